"""The memory planner: estimates against the GPU measurements, presets by VRAM, downgrade plans,
and the engine's recovery from out-of-memory (injected through the step callback)."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from conftest import REPO
from i2v.engine import VideoEngine
from i2v.errors import OutOfMemory
from i2v.memory import RunShape, downgrade, estimate, fastest_fit, pick, presets, rungs, usable_gb, usable_ram_gb
from i2v.request import GenerationRequest

sys.path.insert(0, str(REPO / "bench"))
from fit_memory import load_runs  # noqa: E402  (the same reading, re-measurements replacing old runs)

# The files the fit reads, in the order it reads them (`fit_memory.py bench/results/memory_h200_*.jsonl`).
_, _RUNS, _ = load_runs(sorted((REPO / "bench" / "results").glob("memory_h200_*.jsonl")))
MEASURED = [r for runs in _RUNS.values() for r in runs if r.get("ok")]


def settings_of(run: dict, steps: int) -> RunShape:
    """The planner's view of a measured run."""
    return RunShape(run["family"], run["height"], run["width"], run["num_frames"], steps, run["strategy"], run["tiling"])


def test_there_are_measurements():
    families = {r["family"] for r in MEASURED}
    # Every family with a diffusers pipeline (wan2.1-i2v-14b-720p shares 480p's weights).
    assert families == {"wan2.1-i2v-14b-480p", "wan2.2-i2v-a14b", "wan2.2-ti2v-5b", "ltx-video", "cogvideox-5b-i2v",
                        "hunyuanvideo-i2v", "i2vgen-xl", "svd-xt"}
    assert {r["strategy"] for r in MEASURED} >= {"none", "model", "group", "sequential"}


@pytest.mark.parametrize("run", MEASURED, ids=lambda r: f"{r['family']}-{r['strategy']}-{r['height']}x{r['num_frames']}-t{int(r['tiling'])}")
def test_estimate_is_within_15_percent_of_each_measured_peak(run):
    guess = estimate(settings_of(run, 3))
    assert guess.measured
    assert abs(guess.peak_gb - run["peak_gb"]) <= 0.15 * run["peak_gb"], (guess.phases_gb, run)


@pytest.mark.parametrize("run", MEASURED, ids=lambda r: f"{r['family']}-{r['strategy']}-{r['height']}x{r['num_frames']}-t{int(r['tiling'])}")
def test_estimated_seconds_match_each_measured_run(run):
    # The run as measured: the first step (it moves weights in), the other steps, the decode.
    took = run["first_step_seconds"] + (run["steps"] - 1) * run["seconds_per_step"] + run["decode_seconds"]
    guess = estimate(settings_of(run, run["steps"]))
    assert abs(guess.seconds - took) <= 0.2 * took + 1.0, (guess.seconds, took)


def test_peaks_fitted_on_an_h200_hold_on_an_h100():
    # The same pipelines on another card (bench/results/memory_h100_none.jsonl): memory is the
    # model's, not the card's; only the seconds change (presets.toml's speed factor).
    _, runs, device = load_runs([REPO / "bench" / "results" / "memory_h100_none.jsonl"])
    assert all("H100" in where["device"] for where in device.values())
    on_h100 = [r for family in runs.values() for r in family if r.get("ok")]
    assert len(on_h100) >= 10
    for run in on_h100:
        guess = estimate(settings_of(run, 3))
        assert abs(guess.peak_gb - run["peak_gb"]) <= 0.15 * run["peak_gb"], run


# ---------------------------------------------------------------------- long-video (window) families
WINDOW_FAMILIES = ("framepack", "skyreels-v2-df-1.3b-540p", "skyreels-v2-df-14b-540p")
# Measured on an H100 (bench/long_families.py --size ...): every weight on the GPU, then model and group
# offload (FramePack, SkyReels-V2 DF 14B); LTX-Video 0.9.8 13B (ltx-video-long) all on the GPU and model offload.
_, _LONG, _ = load_runs([REPO / "bench" / "results" / name for name in (
    "long_families_sizes_h100.jsonl", "long_families_offload_h100.jsonl", "ltx_video_long_h100.jsonl")])  # fmt: skip
LONG_MEASURED = [r for runs in _LONG.values() for r in runs if r.get("ok")]


def test_window_families_are_measured_at_several_sizes():
    assert {r["family"] for r in LONG_MEASURED} == {*WINDOW_FAMILIES, "ltx-video-long"}
    for family in (*WINDOW_FAMILIES, "ltx-video-long"):
        runs = [r for r in LONG_MEASURED if r["family"] == family and not r["tiling"]]
        assert len({r["num_frames"] for r in runs}) >= 2 and len({r["height"] * r["width"] for r in runs}) >= 2


@pytest.mark.parametrize("run", LONG_MEASURED, ids=lambda r: f"{r['family']}-{r['height']}x{r['num_frames']}-t{int(r['tiling'])}")
def test_window_estimate_matches_each_measured_run(run):
    guess = estimate(settings_of(run, run["steps"]))
    assert guess.measured
    for phase in ("encode", "denoise", "decode"):
        assert abs(guess.phases_gb[phase] - run[f"{phase}_peak_gb"]) <= 0.05 * run[f"{phase}_peak_gb"], (phase, run)
    # The run's every step and decode (the encode is not estimated), in an H200's seconds.
    took = (run["denoise_seconds"] + run["decode_seconds"]) / presets()["planner"]["speed"]["H100"]
    assert abs(guess.seconds - took) <= 0.2 * took + 1.0, (guess.seconds, took)


def test_window_rule_is_the_rooms():
    # The profile's window (written by bench/fit_memory.py) counts what the family rooms run.
    from i2v.families import get_family
    from i2v.memory import _profile, windows

    for family_id in (*WINDOW_FAMILIES, "ltx-video-long"):
        family, window = get_family(family_id), _profile(family_id)["window"]
        for frames in range(family.min_frames, family.max_frames + 1):
            if family.round_frames(frames, []) != frames:
                continue
            rooms = family.sections(frames) if family_id == "framepack" else family.windows(frames)
            rooms = len(rooms) if family_id == "ltx-video-long" else rooms  # its room lists the windows
            assert windows(frames, window) == rooms, (family_id, frames)


@pytest.mark.parametrize("family_id", WINDOW_FAMILIES)
def test_a_window_family_peaks_with_one_window_and_takes_the_time_of_all(family_id):
    from i2v.families import get_family
    from i2v.memory import _profile, windows

    family = get_family(family_id)
    window, held = _profile(family_id)["window"], _profile(family_id)["peak_gb"]["none"]["held_clip"]
    shortest = family.round_frames(window["frames"], [])
    longest = family.round_frames(family.max_frames, [])
    short, long = (RunShape(family_id, family.height, family.width, f, 25) for f in (shortest, longest))
    one, many = estimate(short), estimate(long)
    # The denoiser sees one window however long the clip: its phase grows only by the clip made so far
    # that the pipeline keeps on the GPU, and the peak by no more than that or the decode's growth.
    more_clip = held * family.height * family.width * (longest - shortest) / 1e6
    assert many.phases_gb["denoise"] - one.phases_gb["denoise"] == pytest.approx(more_clip, abs=0.02)
    grew = max(more_clip, many.phases_gb["decode"] - one.phases_gb["decode"])
    assert many.peak_gb - one.peak_gb <= grew + 0.02
    assert many.peak_gb < one.peak_gb + 0.25 * one.peak_gb  # 20-28 windows, not 20-28 times the tokens
    # Each window runs every step: 25 more steps cost each window's 25 more.
    step = {f: estimate(shape.with_(num_inference_steps=50)).seconds - estimate(shape).seconds
            for f, shape in ((shortest, short), (longest, long))}  # fmt: skip
    assert windows(longest, window) > 1 and windows(shortest, window) == 1
    assert step[longest] == pytest.approx(windows(longest, window) * step[shortest], rel=0.01)
    assert many.seconds > windows(longest, window) * step[shortest]


def test_window_families_are_planned():
    # All on the GPU, model and group offload were measured (sequential was not: estimated, unmeasured).
    # On 24 GB FramePack needs group offload and VAE tiling (its untiled decode of a section is ~21 GB
    # above what stays on the GPU), SkyReels-V2 DF 14B group offload; both need ~75 GB of host RAM then.
    framepack = RunShape("framepack", 480, 832, 145, 25)
    assert fastest_fit(framepack, 80).shape.memory_strategy == "none"
    fit = fastest_fit(framepack, 24)
    assert (fit.shape.memory_strategy, fit.shape.vae_tiling, fit.measured) == ("group", True, True)
    tight = fastest_fit(framepack, 24, ram_gb=64)  # group offload's pinned copy outgrows 64 GB: sequential, unmeasured
    assert tight.shape.memory_strategy == "sequential" and not tight.measured
    assert not estimate(framepack.with_(memory_strategy="sequential")).measured
    now, plan = downgrade(framepack, 24, ram_gb=128)
    assert now.peak_gb > usable_gb(24) and plan and str(plan[0].change) == "VAE tiling on"
    peaks = [now.peak_gb] + [r.estimate.peak_gb for r in plan]
    assert all(b < a for a, b in zip(peaks, peaks[1:]))
    fourteen = fastest_fit(RunShape("skyreels-v2-df-14b-540p", 544, 960, 257, 50), 24)
    assert fourteen.shape.memory_strategy == "group" and fourteen.peak_gb <= usable_gb(24)
    # LTX-Video 0.9.8 13B: all on the GPU on 80 GB; model offload holds the 24 GB transformer whole
    # (35.6 GB) and group offload was not measured, so it does not fit 24 GB yet.
    ltx = RunShape("ltx-video-long", 512, 704, 161, 8)
    assert fastest_fit(ltx, 80).shape.memory_strategy == "none" and fastest_fit(ltx, 24) is None
    small = RunShape("skyreels-v2-df-1.3b-540p", 544, 960, 257, 50)
    assert fastest_fit(small, 24).shape.memory_strategy == "none" and downgrade(small, 24)[1] == []
    big = RunShape("skyreels-v2-df-14b-540p", 544, 960, 737, 50)
    ladder = rungs(big)
    assert ladder and all(r.estimate is not None for r in ladder)
    assert all((r.shape.num_frames - 97) % 80 == 0 or r.shape.num_frames <= 97 for r in ladder)  # whole windows


def test_more_memory_never_means_a_worse_preset():
    order = [(c["family"], c["height"], c["width"], c["num_frames"]) for c in presets()["candidates"]]
    previous = len(order)
    for gb in (8, 12, 16, 24, 48, 80, 141):
        chosen = pick(gb, gpu_name="NVIDIA H200")
        if chosen is None:
            continue
        s = chosen.shape
        rank = order.index((s.family, s.height, s.width, s.num_frames))
        assert rank <= previous, gb
        previous = rank
        assert chosen.peak_gb <= usable_gb(gb) and chosen.measured


def test_tiers_pick_what_fits_quality_first():
    big = pick(80, gpu_name="NVIDIA H200").shape
    assert (big.family, big.height, big.memory_strategy) == ("wan2.2-i2v-a14b", 720, "none")  # all on the GPU: fastest
    mid = pick(48, gpu_name="NVIDIA H200").shape
    assert (mid.family, mid.height) == ("wan2.2-i2v-a14b", 720) and mid.memory_strategy != "none"  # same video, offloaded
    small = pick(12, gpu_name="NVIDIA H200").shape
    assert small.memory_strategy in ("group", "sequential")
    smallest = pick(8, gpu_name="NVIDIA H200")
    assert smallest is not None and smallest.peak_gb <= usable_gb(8)
    # A slow card skips presets that would take longer than max_minutes.
    slow = pick(24, gpu_name="NVIDIA GeForce RTX 3090")
    assert slow is None or slow.seconds <= presets()["planner"]["max_minutes"] * 60


def test_downgrade_plan_drops_knobs_in_order_until_it_fits():
    wanted = RunShape("wan2.1-i2v-14b-720p", 720, 1280, 81, 40)
    now, plan = downgrade(wanted, 24)
    assert now.peak_gb > usable_gb(24)
    assert str(plan[0].change) == "VAE tiling on"
    assert plan[-1].estimate.peak_gb <= usable_gb(24)
    assert all(r.estimate.peak_gb <= now.peak_gb for r in plan)
    assert downgrade(wanted, 141)[1] == []  # fits: no plan


def test_times_are_for_the_gpu_named_everywhere():
    # pick, downgrade and fastest_fit all scale the H200's seconds by the same factor, so the
    # preset's time and the plan's times on one panel are for the same card.
    wanted = RunShape("wan2.1-i2v-14b-720p", 720, 1280, 81, 40)
    factor = presets()["planner"]["speed"]["4090"]
    now, plan = downgrade(wanted, 24, gpu_name="NVIDIA GeForce RTX 4090")
    assert now.seconds == round(estimate(wanted).seconds * factor, 1)
    assert [r.estimate.seconds for r in plan] == [round(estimate(r.shape).seconds * factor, 1) for r in plan]
    fit = fastest_fit(wanted, 24, gpu_name="NVIDIA GeForce RTX 4090")
    assert fit.seconds == round(estimate(fit.shape).seconds * factor, 1)
    unknown = presets()["planner"]["speed"]["default"]
    assert downgrade(wanted, 24)[0].seconds == round(estimate(wanted).seconds * unknown, 1)  # as pick() does


def test_rungs_keep_the_family_rules():
    ladder = rungs(RunShape("ltx-video", 704, 1216, 121, 50, "sequential", True), with_estimates=False)
    assert [str(r.change).split()[0] for r in ladder] == ["num_frames", "num_frames", "resolution"]
    for rung in ladder:
        assert (rung.shape.num_frames - 1) % 8 == 0
        assert rung.shape.height % 32 == 0 and rung.shape.width % 32 == 0


def test_host_ram_limits_offload():
    # Offloaded weights wait in host RAM: Wan 2.2 A14B (~64 GB of weights) cannot be offloaded on a
    # 32 GB machine, so an 8 GB card there gets a smaller model, and the estimate says how much RAM.
    roomy = pick(8, gpu_name="NVIDIA H200", ram_gb=256)
    assert roomy.shape.family == "wan2.2-i2v-a14b" and roomy.host_gb > 60
    tight = pick(8, gpu_name="NVIDIA H200", ram_gb=32)
    assert tight.shape.family != "wan2.2-i2v-a14b" and tight.host_gb <= usable_ram_gb(32)
    assert estimate(RunShape("ltx-video", 480, 704, 65, 30)).host_gb == 0.0  # all on the GPU: none
    wanted = RunShape("wan2.2-i2v-a14b", 480, 832, 81, 40)
    assert fastest_fit(wanted, 24, ram_gb=32) is None
    now, plan = downgrade(wanted, 24, ram_gb=32)
    assert plan and not any(r.estimate.host_gb <= usable_ram_gb(32) for r in plan if r.shape.memory_strategy != "none")


def test_margin_is_kept():
    assert usable_gb(24) < 24 - 1.0
    assert usable_gb(0.5) == 0.0


def tiny_request(chelsea, model, **extra):
    return GenerationRequest(image=chelsea, prompt="cat", model=str(model), height=32, width=32, num_frames=9,
                             num_inference_steps=2, seed=1, **extra)  # fmt: skip


def test_out_of_memory_steps_down_once_and_says_so(tmp_path, tiny_models, chelsea):
    engine = VideoEngine(tmp_path)
    attempts = []

    def on_progress(progress):
        if progress.stage == "denoising" and progress.step == 1:
            attempts.append(progress)
            if len(attempts) == 1:
                raise torch.OutOfMemoryError("CUDA out of memory (injected)")

    result = engine.generate(tiny_request(chelsea, tiny_models["wan2.2-ti2v-5b"]), on_progress=on_progress)
    assert len(attempts) == 2
    assert result.vae_tiling and "out of GPU memory; retried with VAE tiling on" in map(str, result.adjustments)
    assert result.path.is_file()


def test_second_out_of_memory_is_a_clear_error_and_the_next_job_runs(tmp_path, tiny_models, chelsea):
    engine = VideoEngine(tmp_path)

    def always(progress):
        if progress.stage == "denoising":
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")

    with pytest.raises(OutOfMemory, match="ran out of GPU memory .* already after retrying with VAE tiling on"):
        engine.generate(tiny_request(chelsea, tiny_models["wan2.2-ti2v-5b"]), on_progress=always)
    assert engine._pipe is None  # everything was freed
    assert not any(tmp_path.iterdir())
    assert engine.generate(tiny_request(chelsea, tiny_models["wan2.2-ti2v-5b"])).path.is_file()


def test_strategy_and_tiling_are_reported(tmp_path, tiny_models, chelsea):
    result = VideoEngine(tmp_path).generate(
        tiny_request(chelsea, tiny_models["ltx-video"], memory_strategy="model", vae_tiling=True)
    )
    assert result.memory_strategy == "model" and result.vae_tiling


def test_vae_tiling_where_the_vae_has_none(tmp_path, tiny_models, chelsea):
    # SVD's VAE has no tiled decode: asking for tiling is reported and dropped, not a crash,
    # and the planner never offers it as a rung.
    result = VideoEngine(tmp_path).generate(tiny_request(chelsea, tiny_models["svd-xt"], vae_tiling=True))
    assert not result.vae_tiling
    assert "svd-xt cannot decode in tiles: VAE tiling was not used" in map(str, result.adjustments)
    ladder = rungs(RunShape("svd-xt", 576, 1024, 25, 25), with_estimates=False)
    assert str(ladder[0].change) == "model offload"
    assert not any(r.shape.vae_tiling for r in ladder)


@pytest.fixture
def plan_command(cli_in_process):
    """`i2v plan ARGS` run in this process (tests/conftest.py's `cli_in_process`): its stdout, the
    planner's report as the command prints it. The command as a process (exit codes, one line on
    stderr, nothing else said) is tests/test_cli.py's."""

    def plan(*args: str) -> str:
        code, out, err = cli_in_process("plan", *args)
        assert code == 0, err
        return out

    return plan


def test_plan_command(plan_command):
    def plan(*args):
        return json.loads(plan_command(*args, "--json"))

    chosen = plan("--vram-gb", "24")
    assert {"family", "height", "width", "num_frames", "num_inference_steps", "strategy", "estimated_peak_gb",
            "estimated_seconds"} <= set(chosen["preset"])  # fmt: skip
    assert chosen["preset"]["estimated_peak_gb"] <= chosen["usable_gb"]
    asked = plan("--vram-gb", "24", "--model", "wan2.1-i2v-14b-720p", "--height", "720", "--width", "1280",
                 "--frames", "81", "--steps", "40")  # fmt: skip
    assert not asked["fits"] and asked["downgrade"][0]["change"] == "VAE tiling on"
    assert asked["downgrade"][-1]["estimated_peak_gb"] <= asked["usable_gb"]
    # Times (and so the 20-minute limit) are for the GPU named: an H200 holds A14B at 720p in the
    # time an unknown card (3x slower) needs for 480p.
    h200, unknown = plan("--vram-gb", "48", "--gpu", "H200", "--ram-gb", "256"), plan("--vram-gb", "48", "--ram-gb", "256")
    assert (h200["speed_factor"], h200["preset"]["height"]) == (1.0, 720)
    assert unknown["gpu"] is None and unknown["speed_factor"] == presets()["planner"]["speed"]["default"]
    assert unknown["preset"]["estimated_seconds"] <= presets()["planner"]["max_minutes"] * 60
    detected = plan("--detect")
    assert detected["hardware"]["gpus"] == [] and "CPU only" in detected["hardware"]["summary"]


def test_fastest_fit_picks_offload_only_when_needed():
    wanted = RunShape("wan2.1-i2v-14b-480p", 480, 832, 81, 40)
    assert fastest_fit(wanted, 80).shape.memory_strategy == "none"
    on_24 = fastest_fit(wanted, 24).shape
    assert on_24.memory_strategy in ("model", "group") and estimate(on_24).peak_gb <= usable_gb(24)
    assert fastest_fit(wanted.with_(vae_tiling=True), 80).shape.vae_tiling  # asked-for tiling stays
    svd = fastest_fit(RunShape("svd-xt", 576, 1024, 25, 25, vae_tiling=True), 24).shape
    assert svd.memory_strategy == "none" and not svd.vae_tiling  # its VAE has no tiling to keep
    assert fastest_fit(wanted, 2) is None  # nothing fits


def test_auto_strategy_on_cpu_is_the_engine_default(tmp_path, tiny_models, chelsea):
    result = VideoEngine(tmp_path, offload="model").generate(tiny_request(chelsea, tiny_models["ltx-video"]))
    assert result.memory_strategy == "model"


def test_group_offload_needs_its_measured_host_ram():
    # Measured on a 128 GB machine (bench/results/host_memory_h200.jsonl): group offload pins a copy
    # of the weights rounded up per tensor, and placing Wan 2.2 A14B peaked at 122 GB (1.9x its 64 GB).
    a14b = RunShape("wan2.2-i2v-a14b", 720, 1280, 81, 40, "group", True)
    weights = 64.05
    assert estimate(a14b).host_gb == pytest.approx(1.9 * weights, abs=0.2)
    assert estimate(a14b.with_(memory_strategy="model")).host_gb == pytest.approx(1.1 * weights, abs=0.2)
    assert estimate(a14b.with_(memory_strategy="none")).host_gb == 0.0
    # So a 12 GB card in a 128 GB machine is not told to group-offload A14B, which nearly ran it out of RAM.
    chosen = pick(12, gpu_name="NVIDIA H200", ram_gb=128)
    assert not (chosen.shape.family == "wan2.2-i2v-a14b" and chosen.shape.memory_strategy == "group")
    assert chosen.host_gb <= usable_ram_gb(128)


def test_the_gpu_a_device_names_is_the_one_described():
    from i2v.hardware import GPU, Hardware

    two = Hardware((GPU(0, "NVIDIA A100", 80.0, 70.0), GPU(1, "NVIDIA GeForce RTX 4090", 24.0, 23.0)), 128.0)
    assert two.gpu_for("cuda:1").name == "NVIDIA GeForce RTX 4090"
    assert two.gpu_for("cuda").index == 0 and two.gpu_for(None).index == 0
    assert two.gpu_for("cpu") is None and two.gpu_for("cuda:7") is None
    assert "GPU 1 (used): NVIDIA GeForce RTX 4090" in str(two.summary("cuda:1"))
    assert "GPU 0 (used)" not in str(two.summary("cuda:1"))
    assert "CPU only" in str(Hardware((), 16.0).summary("cuda"))


def test_plan_names_the_ram_it_assumed_and_the_device_it_read(plan_command, monkeypatch):
    from i2v.hardware import host_ram_gb

    def plan(*args, env=None):
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        return plan_command(*args)

    report = json.loads(plan("--vram-gb", "12", "--json"))
    assert report["ram_assumed"] and report["ram_gb"] == pytest.approx(host_ram_gb())
    assert report["preset"]["estimated_host_ram_gb"] <= usable_ram_gb(host_ram_gb())
    assert "(this machine's; --ram-gb N to plan for another)" in plan("--vram-gb", "12")
    assert "ram_assumed" not in json.loads(plan("--vram-gb", "12", "--ram-gb", "256", "--json"))
    detected = json.loads(plan("--detect", "--json", env={"I2V_DEVICE": "cuda:1"}))
    assert detected["hardware"]["device"] == "cuda:1"


def test_the_plan_only_goes_down():
    # SVD-XT's group offload peaks above its model offload, and VAE tiling changes nothing for
    # I2VGen-XL: such rungs were in the plan; now each rung lowers the estimated peak.
    for shape, vram in ((RunShape("svd-xt", 576, 1024, 25, 25), 12), (RunShape("i2vgen-xl", 1024, 1024, 32, 50), 24),
                        (RunShape("wan2.1-i2v-14b-720p", 720, 1280, 81, 40), 24)):  # fmt: skip
        now, plan = downgrade(shape, vram, ram_gb=128)
        peaks = [now.peak_gb] + [r.estimate.peak_gb for r in plan]
        assert all(b < a for a, b in zip(peaks, peaks[1:])), (shape.family, peaks)
    svd = [str(r.change) for r in downgrade(RunShape("svd-xt", 576, 1024, 25, 25), 12)[1]]
    assert "group offload" not in svd and svd[:2] == ["model offload", "sequential offload"]
    assert "VAE tiling on" not in [str(r.change) for r in rungs(RunShape("i2vgen-xl", 1024, 1024, 32, 50))]


def test_a_slow_plan_comes_with_a_faster_smaller_video(plan_command):
    # I2VGen-XL 1024x1024x32 on 24 GB: keeping the video means sequential offload (several times
    # slower); a smaller video all on the GPU takes a fraction of that. Both are offered, the
    # smaller one never applied unasked.
    from i2v.memory import faster_alternative

    asked = RunShape("i2vgen-xl", 1024, 1024, 32, 50)
    now, plan = downgrade(asked, 24, ram_gb=128)
    assert plan[-1].shape.memory_strategy == "sequential" and plan[-1].shape.num_frames == 32
    faster = faster_alternative(asked, plan[-1].estimate, 24, 128)
    assert faster is not None and faster.estimate.seconds < plan[-1].estimate.seconds / 2
    assert faster.estimate.peak_gb <= usable_gb(24)
    smaller = faster.shape
    assert smaller.num_frames < 32 or smaller.height * smaller.width < 1024 * 1024
    # A plan whose offload costs little time (group offload) gets no such offer.
    wan = RunShape("wan2.1-i2v-14b-720p", 720, 1280, 81, 40)
    _, wan_plan = downgrade(wan, 24, ram_gb=128)
    assert faster_alternative(wan, wan_plan[-1].estimate, 24, 128) is None
    flags = ("--vram-gb", "24", "--ram-gb", "128", "--model", "i2vgen-xl", "--height", "1024", "--width", "1024",
             "--frames", "32", "--json")  # fmt: skip
    report = json.loads(plan_command(*flags))
    assert report["faster"]["estimated_seconds"] < report["downgrade"][-1]["estimated_seconds"]
    auto = json.loads(plan_command(*flags, "--offload", "auto"))
    assert auto["fits"] and auto["asked"]["strategy"] == "sequential" and auto["faster"] == report["faster"]
