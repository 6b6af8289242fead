"""One video across several GPUs (i2v/parallel.py): diffusers' context parallelism, one process per
device, run here on the CPU (gloo) with tiny Wan models: the split video is the one-process video,
a Stop ends every rank at the same step, a killed rank ends the others, and what cannot be split
is refused before any process starts."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import threading

import numpy as np
import pytest
from ranks import gone, ranks_running

from i2v.checks import check
from i2v.engine import VideoEngine
from i2v.errors import Cancelled, InvalidInput, RankLost
from i2v.export import read_mp4
from i2v.families import all_families
from i2v.parallel import launch
from i2v.request import GenerationRequest

SMALL = dict(height=64, width=64, num_frames=9, num_inference_steps=2, seed=7, prompt="a cat turns its head")


@pytest.fixture(scope="module")
def wan(tiny_models) -> str:
    return str(tiny_models["wan2.2-ti2v-5b"])  # WanTransformer3DModel, 2 heads


def request(chelsea, model: str, **knobs) -> GenerationRequest:
    return GenerationRequest(image=chelsea, model=model, **{**SMALL, **knobs})


def test_two_ranks_make_the_video_one_process_makes(tmp_path, chelsea, wan):
    pids: list[int] = []
    stages: list[tuple[str, int]] = []
    split = launch(request(chelsea, wan, gpus=2), ["cpu", "cpu"], engine_options={"output_dir": tmp_path / "two"},
                   on_progress=lambda p: stages.append((p.stage, p.step)), on_start=pids.extend)  # fmt: skip
    alone = VideoEngine(tmp_path / "one", device="cpu").generate(request(chelsea, wan))
    assert len(pids) == 2 and gone(pids)
    assert ("denoising", 1) in stages and ("denoising", 2) in stages and stages[-1][0] == "encoding"
    frames, _ = read_mp4(split.path)
    same, _ = read_mp4(alone.path)
    assert frames.shape == same.shape == (9, 64, 64, 3)
    assert frames.std() > 5  # a picture, not a flat frame
    # The same seed, the same latents: splitting the sequence changes no number the file keeps
    assert np.abs(frames.astype(int) - same.astype(int)).max() <= 1
    assert split.gpus == 2 and split.seed == 7 and split.memory_strategy == "none"
    assert any(note.code == "parallel.ran" and note.params["devices"] == "cpu, cpu" for note in split.adjustments)
    assert [path.suffix for path in (tmp_path / "two").iterdir()] in ([".mp4", ".json"], [".json", ".mp4"])


def test_heads_the_ranks_do_not_divide_are_padded(tmp_path, chelsea, wan):
    # 3 heads on 2 ranks: diffusers' "Ulysses anything" pads them to 4; the video is still the same.
    import torch
    from diffusers import WanTransformer3DModel

    folder = tmp_path / "three-heads"
    shutil.copytree(wan, folder)
    shutil.rmtree(folder / "transformer")
    torch.manual_seed(0)
    WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=3, attention_head_dim=12, in_channels=48,
                          out_channels=48, text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
                          qk_norm="rms_norm_across_heads",
                          rope_max_seq_len=32).save_pretrained(folder / "transformer")  # fmt: skip
    split = launch(request(chelsea, str(folder), gpus=2, num_inference_steps=1), ["cpu", "cpu"],
                   engine_options={"output_dir": tmp_path})  # fmt: skip
    alone = VideoEngine(tmp_path, device="cpu").generate(request(chelsea, str(folder), num_inference_steps=1))
    frames, same = read_mp4(split.path)[0], read_mp4(alone.path)[0]
    assert np.abs(frames.astype(int) - same.astype(int)).max() <= 1


def test_stop_ends_every_rank_at_the_same_step_and_leaves_nothing(tmp_path, chelsea, wan, caplog):
    caplog.set_level(logging.INFO, logger="i2v.parallel")  # the ranks log at the parent's level
    pids: list[int] = []
    cancel = threading.Event()
    steps: list[int] = []

    def on_progress(progress):
        if progress.stage == "denoising":
            steps.append(progress.step)
            cancel.set()  # after the first step: the ranks stop at the next

    with pytest.raises(Cancelled):
        launch(request(chelsea, wan, gpus=2, num_inference_steps=50), ["cpu", "cpu"],
               engine_options={"output_dir": tmp_path}, on_progress=on_progress, cancel=cancel,
               on_start=pids.extend)  # fmt: skip
    assert gone(pids)
    assert steps and max(steps) < 50
    # Both ranks raised Cancelled (rank 1 alone would have waited in a collective, then been killed)
    said = [r.getMessage() for r in caplog.records if "stops: stopped on request" in r.getMessage()]
    assert len(said) == 2 and any("rank 0 " in s for s in said) and any("rank 1 " in s for s in said)
    assert not list(tmp_path.glob("*.mp4")) and not list(tmp_path.glob(".*"))


def test_a_killed_rank_ends_the_others(tmp_path, chelsea, wan):
    pids: list[int] = []

    def on_progress(progress):
        if progress.stage == "denoising" and progress.step == 1:
            os.kill(pids[1], signal.SIGKILL)  # the OOM killer's way: no word, no cleanup

    with pytest.raises(RankLost) as lost:
        launch(request(chelsea, wan, gpus=2, num_inference_steps=6), ["cpu", "cpu"],
               engine_options={"output_dir": tmp_path}, on_progress=on_progress, on_start=pids.extend)  # fmt: skip
    assert lost.value.code == "parallel.rank_lost"
    assert lost.value.message.params["rank"] == 1 and "SIGKILL" in lost.value.message.params["how"]
    assert gone(pids)
    assert not list(tmp_path.glob("*.mp4"))


def test_an_interrupted_parent_leaves_no_rank_behind(tmp_path, chelsea, wan):
    pids: list[int] = []

    def on_progress(progress):
        if progress.stage == "denoising":
            raise KeyboardInterrupt  # Ctrl-C, or anything else that ends the caller's thread mid-run

    with pytest.raises(KeyboardInterrupt):
        launch(request(chelsea, wan, gpus=2, num_inference_steps=6), ["cpu", "cpu"],
               engine_options={"output_dir": tmp_path}, on_progress=on_progress, on_start=pids.extend)  # fmt: skip
    assert len(pids) == 2 and gone(pids) and ranks_running() == []


def test_what_cannot_be_split_is_refused_before_any_process(tmp_path, chelsea, wan):
    def refused(model: str, **knobs) -> str:
        started: list[int] = []
        with pytest.raises(InvalidInput) as error:
            launch(request(chelsea, model, gpus=2, **knobs), ["cpu", "cpu"], engine_options={"output_dir": tmp_path},
                   on_start=started.extend)  # fmt: skip
        assert started == [] and ranks_running() == []
        return error.value.code

    assert refused("camera") == "parallel.camera"
    assert refused("cogvideox-5b-i2v") == "parallel.not_supported"  # its transformer has no _cp_plan
    assert refused("ltx-video") == "parallel.not_supported"  # a _cp_plan, but not for per-token timesteps
    assert refused(wan, memory_strategy="model") == "parallel.offload"
    assert refused(wan, step_cache="first_block") == "parallel.step_cache"
    assert refused(wan, height=96, width=96) == "parallel.uneven"  # 3 latent frames of 3x3: 27 tokens
    with pytest.raises(InvalidInput, match="gpus 3 needs 3 different devices"):
        launch(request(chelsea, wan, gpus=3), ["cpu", "cpu"], engine_options={"output_dir": tmp_path})
    # The engine alone never runs a split video: launch starts its processes
    with pytest.raises(InvalidInput) as alone:
        VideoEngine(tmp_path, device="cpu").generate(request(chelsea, wan, gpus=2))
    assert alone.value.code == "parallel.needs_launch"
    # torch.compile stopped on diffusers' split attention (2 H200s): refused when asked by name...
    assert refused(wan, compile=True) == "parallel.compile"
    # ... and speed fast's compile and step cache are dropped, and said, rather than refused
    fast = check(request(chelsea, wan, gpus=2, speed="fast"))
    assert fast.knobs.step_cache == "none" and fast.knobs.compile is False
    assert {"parallel.no_step_cache", "parallel.no_compile"} <= {n.code for n in fast.adjustments}


def test_the_families_that_split_are_those_diffusers_can_split():
    import inspect

    import diffusers

    for family in all_families().values():
        if not family.context_parallel:
            continue
        annotation = inspect.signature(family.pipeline_class().__init__).parameters["transformer"].annotation
        transformer = getattr(diffusers, annotation) if isinstance(annotation, str) else annotation
        assert getattr(transformer, "_cp_plan", None), family.id
    assert {f.id for f in all_families().values() if f.context_parallel} >= {"wan2.1-i2v-14b-480p", "wan2.2-i2v-a14b",
                                                                               "wan2.2-ti2v-5b"}  # fmt: skip


def test_i2v_generate_gpus_2_on_two_cpu_processes(tmp_path, chelsea, wan, cli_in_process, monkeypatch):
    monkeypatch.setenv("I2V_DEVICES", "cpu,cpu")
    out = tmp_path / "split.mp4"
    code, stdout, stderr = cli_in_process("generate", "--image", chelsea, "--model", wan, "--gpus", 2, "--height", 64,
                                          "--width", 64, "--frames", 9, "--steps", 2, "--seed", 7, "--out", out,
                                          "--json")  # fmt: skip
    assert code == 0, stderr
    assert '"gpus":2' in stdout.replace(" ", "")
    frames, metadata = read_mp4(out)
    assert frames.shape == (9, 64, 64, 3) and ranks_running() == []
    monkeypatch.setenv("I2V_DEVICES", "cpu")
    code, _, stderr = cli_in_process("generate", "--image", chelsea, "--model", wan, "--gpus", 2, "--out", tmp_path)
    assert code == 2 and "gpus 2 needs 2 different devices, one process each; 1 given: cpu" in stderr
    # no I2V_DEVICES on a box without GPUs: refused in one line, before any process starts (it once started
    # ranks on cuda:0 and cuda:1, which died with tracebacks; `--device cpu` would run them on the CPU)
    monkeypatch.delenv("I2V_DEVICES")
    code, _, stderr = cli_in_process("generate", "--image", chelsea, "--model", wan, "--gpus", 2, "--out", tmp_path)
    assert code == 2 and "gpus 2 would run on cuda:0, cuda:1, which this machine does not have" in stderr, stderr
    assert "Traceback" not in stderr and ranks_running() == []
