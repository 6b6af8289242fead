"""Speed modes on a CPU with tiny models: fp8 and compile need a GPU, so the result says plainly what
was not applied and why; turbo runs the family's distilled settings with its LoRA fused (a tiny
LoRA under the published file name), and says what to fetch when the file is missing."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
import torch

from i2v.checks import check
from i2v.engine import VideoEngine
from i2v.errors import InvalidInput, ModelNotAvailable
from i2v.request import GenerationRequest
from i2v.speed import turbo_table
from i2v.tiny import make_tiny_lora

WAN = "wan2.1-i2v-14b-480p"
TURBO_FILE = turbo_table()[WAN].lora.split("::")[1]


def request(photo, model, **overrides) -> GenerationRequest:
    fields = dict(image=photo, prompt="a cat turns its head", model=str(model), height=32, width=32, num_frames=9,
                  fps=8, seed=5)  # fmt: skip
    return GenerationRequest(**{**fields, **overrides})


@pytest.fixture
def engine(tmp_path):
    torch.set_num_threads(1)
    return VideoEngine(tmp_path / "out", device="cpu", lora_dir=tmp_path / "loras")


def levers(result) -> dict:
    return {lever.lever: (lever.applied, str(lever.reason)) for lever in result.levers}


def test_fast_on_a_cpu_says_what_was_not_applied_and_why(engine, tiny_models, chelsea):
    result = engine.generate(request(chelsea, tiny_models["ltx-video"], speed="fast", num_inference_steps=2))
    said = levers(result)
    assert said["quantize"] == (False, "fp8 needs a CUDA GPU; this run is on cpu")
    assert said["compile"] == (False, "compile needs a CUDA GPU; this run is on cpu")
    assert said["step_cache"][0] is False and "with 2 steps there is nothing to skip" in said["step_cache"][1]
    assert (result.quantize, result.compile, result.step_cache) == ("none", False, "none")  # what was used
    sidecar = json.loads(result.metadata_path.read_text())
    assert [lv["lever"] for lv in sidecar["levers"]] == ["quantize", "compile", "step_cache"]
    assert sidecar["levers"][0]["reason"]["text"] == "fp8 needs a CUDA GPU; this run is on cpu"


def test_exact_asks_for_no_lever(engine, tiny_models, chelsea):
    result = engine.generate(request(chelsea, tiny_models["ltx-video"], num_inference_steps=2))
    assert result.speed == "exact" and result.levers == []


def test_a_step_cache_asked_for_on_its_own_runs_on_the_cpu(engine, tiny_models, chelsea):
    plain = engine.generate(request(chelsea, tiny_models[WAN], num_inference_steps=3))
    cached = engine.generate(request(chelsea, tiny_models[WAN], num_inference_steps=3, step_cache="first_block"))
    assert levers(cached)["step_cache"] == (True, "None")
    assert cached.step_cache == "first_block" and cached.num_inference_steps == plain.num_inference_steps
    assert not any(getattr(m, "is_cache_enabled", False) for m in [engine._pipe.transformer])  # off after the run


def test_families_without_a_cacheable_denoiser_say_so(engine, tiny_models, chelsea):
    result = engine.generate(request(chelsea, tiny_models["i2vgen-xl"], num_inference_steps=2, num_frames=2,
                                     step_cache="first_block"))  # fmt: skip
    assert levers(result)["step_cache"] == (False, "this model's denoiser has no first_block step cache in diffusers")


def test_turbo_is_refused_for_a_family_without_distilled_weights(engine, tiny_models, chelsea):
    with pytest.raises(InvalidInput, match="ltx-video has no turbo mode .*use fast, or one of wan2.1-i2v-14b-480p"):
        engine.generate(request(chelsea, tiny_models["ltx-video"], speed="turbo"))


def test_turbo_without_its_weights_says_what_to_fetch(engine, tiny_models, chelsea):
    with pytest.raises(ModelNotAvailable) as caught:
        engine.generate(request(chelsea, tiny_models[WAN], speed="turbo"))
    assert f"hf download lightx2v/Wan2.1-Distill-Loras {TURBO_FILE}" in str(caught.value)
    assert not list(engine.output_dir.glob("*.mp4"))


def test_turbo_fuses_its_lora_and_runs_the_distilled_settings(engine, tiny_models, chelsea, tmp_path):
    make_tiny_lora(WAN, tmp_path / "loras" / TURBO_FILE, seed=4)
    model = tiny_models[WAN]
    exact = engine.generate(request(chelsea, model, num_inference_steps=4, guidance_scale=1.0))
    exact_pipe = engine._pipe
    turbo = engine.generate(request(chelsea, model, speed="turbo"))
    assert (turbo.num_inference_steps, turbo.guidance_scale) == (4, 1.0)  # configs/turbo.toml
    assert levers(turbo)["turbo"][0] is True and "LightX2V" in levers(turbo)["turbo"][1]
    assert any("turbo: 4 steps, guidance 1.0" in str(note) for note in turbo.adjustments)
    assert engine._pipe is not exact_pipe and engine._pipe.scheduler.config.shift == 5.0
    from i2v.export import read_mp4

    made_exact, made_turbo = read_mp4(exact.path)[0], read_mp4(turbo.path)[0]
    assert np.abs(made_exact.astype(int) - made_turbo.astype(int)).max() > 2  # the fused LoRA and shift count
    again = engine.generate(request(chelsea, model, num_inference_steps=4, guidance_scale=1.0))  # a plain model again
    np.testing.assert_array_equal(read_mp4(again.path)[0], made_exact)


def test_a_persons_own_steps_win_over_turbos(tiny_models, chelsea):
    checked = check(request(chelsea, tiny_models[WAN], speed="turbo", num_inference_steps=6))
    assert checked.knobs.num_inference_steps == 6 and checked.knobs.guidance_scale == 1.0
    assert checked.knobs.quantize == "fp8" and checked.knobs.compile is True and checked.knobs.step_cache == "none"


def test_levers_set_on_their_own_win_over_speed(tiny_models, chelsea):
    checked = check(request(chelsea, tiny_models[WAN], speed="fast", compile=False, quantize="none"))
    assert (checked.knobs.quantize, checked.knobs.compile, checked.knobs.step_cache) == ("none", False, "first_block")
    assert checked.explicit == {"compile", "quantize"}


def test_compile_is_not_used_for_a_single_run_unless_asked(tiny_models, chelsea, tmp_path, monkeypatch):
    from i2v import speed

    monkeypatch.setattr(speed, "_capability", lambda device: (9, 0))
    family = check(request(chelsea, tiny_models[WAN])).family
    knobs = request(chelsea, WAN, speed="fast", memory_strategy="none").model_copy(
        update=dict(quantize="none", compile=True, step_cache="none", num_inference_steps=40))
    used, reports = speed.decide(knobs, family, "cuda:0", runs_once=True, explicit=frozenset())
    assert used["compile"] is False and "a single run" in str(reports[0].reason)
    used, _ = speed.decide(knobs, family, "cuda:0", runs_once=True, explicit=frozenset({"compile"}))
    assert used["compile"] is True
    used, reports = speed.decide(knobs.model_copy(update={"memory_strategy": "group"}), family, "cuda:0", False,
                                 frozenset())  # fmt: skip
    assert used["compile"] is False and "group offload" in str(reports[0].reason)


def test_fp8_needs_an_ada_or_newer_gpu_and_no_offload(tiny_models, chelsea, monkeypatch):
    from i2v import speed

    family = check(request(chelsea, tiny_models[WAN])).family
    knobs = request(chelsea, WAN, memory_strategy="none").model_copy(
        update=dict(quantize="fp8", compile=False, step_cache="none", num_inference_steps=40))
    monkeypatch.setattr(speed, "_capability", lambda device: (8, 0))  # an A100
    used, reports = speed.decide(knobs, family, "cuda:0", False, frozenset())
    assert used["quantize"] == "none" and "compute capability 8.9 or newer" in str(reports[0].reason)
    monkeypatch.setattr(speed, "_capability", lambda device: (9, 0))
    used, reports = speed.decide(knobs.model_copy(update={"memory_strategy": "model"}), family, "cuda:0", False,
                                 frozenset())  # fmt: skip
    assert used["quantize"] == "none" and "model offload" in str(reports[0].reason)
    monkeypatch.setattr(speed, "_torchao", lambda: True)
    used, reports = speed.decide(knobs, family, "cuda:0", False, frozenset())
    assert used["quantize"] == "fp8" and reports[0].applied


def test_fp8_is_not_tried_on_a_float16_model(tiny_models, chelsea, monkeypatch):
    # Found on the H100: torchao's per-row fp8 asserts on I2VGen-XL's float16 UNet.
    from i2v import speed

    monkeypatch.setattr(speed, "_capability", lambda device: (9, 0))
    monkeypatch.setattr(speed, "_torchao", lambda: True)
    family = check(request(chelsea, tiny_models["i2vgen-xl"], num_frames=2)).family
    knobs = request(chelsea, "i2vgen-xl", memory_strategy="none").model_copy(
        update=dict(quantize="fp8", compile=True, step_cache="none", num_inference_steps=50))
    used, reports = speed.decide(knobs, family, "cuda:0", False, frozenset())
    assert used == {"quantize": "none", "compile": True, "step_cache": "none"}
    assert str(reports[0].reason) == "fp8 is made from bf16 weights; this model runs in float16"


def test_the_eta_starts_after_the_first_step_which_may_hold_a_warm_up(monkeypatch):
    from i2v import progress

    clock = iter([0.0, 200.0, 202.0, 204.0])  # started; step 1 after a 200 s compile; then 2 s a step
    # progress's own clock only: patching time.monotonic itself would stop every other thread's
    # clock too (the session's app server's event loop dies on StopIteration)
    monkeypatch.setattr(progress, "time", types.SimpleNamespace(monotonic=lambda: next(clock)))
    seen = []
    watch = progress.StepWatch("denoising", 10, seen.append, None)
    for _ in range(3):
        watch.step()
    assert [update.eta for update in seen] == [None, 16.0, 14.0]  # not 1800 s from the first step's pace


def test_a_step_cache_asked_on_its_own_wins_over_speeds_compile(tiny_models, chelsea, monkeypatch):
    from i2v import speed

    monkeypatch.setattr(speed, "_capability", lambda device: (9, 0))
    family = check(request(chelsea, tiny_models[WAN])).family
    knobs = request(chelsea, WAN, speed="fast", memory_strategy="none").model_copy(
        update=dict(quantize="none", compile=True, step_cache="first_block", num_inference_steps=40))
    used, reports = speed.decide(knobs, family, "cuda:0", False, frozenset({"step_cache"}))
    assert used["compile"] is False and used["step_cache"] == "first_block"
    assert "first_block step cache asked for breaks compiled blocks" in str(reports[0].reason)
    used, reports = speed.decide(knobs, family, "cuda:0", False, frozenset())  # both from speed: compile wins
    assert used["compile"] is True and used["step_cache"] == "none"
    assert "not used with compiled blocks" in str(reports[-1].reason)


def test_turbos_checkpoint_is_not_claimed_for_a_local_folder(tiny_models, chelsea):
    with pytest.raises(InvalidInput, match="loads its distilled checkpoint .*not a local folder"):
        check(request(chelsea, tiny_models["hunyuanvideo-i2v"], speed="turbo"))


def test_a_turbo_lora_that_does_not_fit_is_one_line_and_nothing_is_kept(engine, tiny_models, chelsea, tmp_path):
    make_tiny_lora("ltx-video", tmp_path / "loras" / TURBO_FILE, seed=4)  # the right name, another model's LoRA
    with pytest.raises(InvalidInput, match=f"LoRA {TURBO_FILE} does not fit {WAN}"):
        engine.generate(request(chelsea, tiny_models[WAN], speed="turbo"))
    assert engine._pipe is None
    assert engine.generate(request(chelsea, tiny_models[WAN], num_inference_steps=2)).path.is_file()


def test_the_planner_counts_fp8_only_for_bf16_models():
    from i2v.memory import RunShape, estimate

    i2vgen = RunShape("i2vgen-xl", 512, 512, 16, 50)
    fp8, plain = estimate(i2vgen.with_(quantize="fp8")), estimate(i2vgen)  # float16: fp8 is not made
    assert (fp8.peak_gb, fp8.seconds) == (plain.peak_gb, plain.seconds)
    wan = RunShape(WAN, 480, 832, 81, 40)
    assert estimate(wan.with_(quantize="fp8")).peak_gb < estimate(wan).peak_gb - 10


def test_cudnn_times_its_convolutions_for_a_compiled_unet_only(engine, tiny_models, chelsea):
    from i2v.speed import tune_convolutions

    engine.generate(request(chelsea, tiny_models["i2vgen-xl"], num_inference_steps=2))
    assert not torch.backends.cudnn.benchmark  # not compiled (no GPU here)
    assert tune_convolutions(engine._pipe, compiled=True) and torch.backends.cudnn.benchmark
    engine.generate(request(chelsea, tiny_models[WAN], num_inference_steps=2))  # the next model turns it off
    assert not torch.backends.cudnn.benchmark
    assert not tune_convolutions(engine._pipe, compiled=True)  # a transformer: its VAE's workspaces stay uncounted
