"""The `i2v` command as other tools call it: a subprocess, exit codes, one-line errors, JSON out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest

from i2v.export import read_mp4

ROOT = Path(__file__).resolve().parents[1]


def i2v(*args, check=True, env=None, entry=("-m", "i2v.cli")):
    """The engine's command (`python -m i2v.cli`), as another tool runs it."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    done = subprocess.run([sys.executable, *entry, *map(str, args)], capture_output=True, text=True, env=env)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def i2v_command(*args, **kwargs):
    """The `i2v` entry point (commands.py): the engine's command with the studio's refiner beside it."""
    return i2v(*args, entry=(str(ROOT / "commands.py"),), **kwargs)


def side_by_side(*runs):
    """The results of independent runs (`partial(i2v, ...)`), started together: each is still a process
    of its own, but each spends seconds importing torch and diffusers while the suite keeps one core."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return [job.result() for job in [pool.submit(run) for run in runs]]


def test_models_json_lists_every_family():
    rows = json.loads(i2v("models", "--json").stdout)
    ids = [row["id"] for row in rows]
    assert ids[0] == "camera" and "wan2.2-ti2v-5b" in ids and "i2vgen-xl" in ids
    assert all(row["weights_present"] is False for row in rows[1:])  # an empty cache
    wan = next(row for row in rows if row["id"] == "wan2.1-i2v-14b-480p")
    assert wan["pipeline"] == "WanImageToVideoPipeline" and wan["frame_rule"] == "4n+1"


def test_make_tiny_then_generate_json(tmp_path, chelsea):
    model = tmp_path / "tiny-ltx"
    i2v("make-tiny", "ltx-video", model)
    out = tmp_path / "videos"
    done = i2v(
        "generate", "--image", chelsea, "--prompt", "猫转头", "--model", model, "--height", 32, "--width", 32,
        "--frames", 9, "--fps", 24, "--steps", 2, "--seed", 3, "--out", out, "--json",
    )  # fmt: skip
    result = json.loads(done.stdout)
    assert {"path", "model", "height", "width", "num_frames", "fps", "seed", "seconds"} <= set(result)
    assert (result["height"], result["width"], result["num_frames"], result["fps"], result["seed"]) == (32, 32, 9, 24, 3)
    frames, meta = read_mp4(result["path"])
    assert frames.shape == (9, 32, 32, 3) and meta["fps"] == 24
    assert "denoising" in done.stderr  # the progress bar


def test_camera_to_an_exact_file(tmp_path, chelsea):
    target = tmp_path / "clip.mp4"
    done = i2v("generate", "--image", chelsea, "--camera", "pan_left", "--frames", 5, "--height", 64, "--width", 64,
               "--out", target)  # fmt: skip
    assert target.is_file() and "camera-motion preview" in done.stdout


def test_bad_input_exits_2_with_one_line_and_no_file(tmp_path, chelsea):
    out = tmp_path / "out"
    cases = [
        ("--image", tmp_path / "missing.png"),
        ("--image", chelsea, "--frames", "-3"),
        ("--image", chelsea, "--camera", "spin"),
        ("--image", chelsea, "--model", "sora"),
        ("--image", chelsea, "--seed", "abc"),
    ]
    for args, done in zip(cases, side_by_side(*(partial(i2v, "generate", *args, "--out", out, check=False)
                                                for args in cases))):  # fmt: skip
        assert done.returncode == 2, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr
    assert not out.exists()


def test_missing_weights_exit_1_with_the_way_to_fetch_them(tmp_path, chelsea):
    done = i2v("generate", "--image", chelsea, "--model", "svd-xt", "--out", tmp_path / "o", check=False)
    assert done.returncode == 1
    assert "stabilityai/stable-video-diffusion-img2vid-xt" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_out_with_another_extension_is_refused_not_made_a_folder(tmp_path, chelsea):
    mov, folder = side_by_side(
        partial(i2v, "generate", "--image", chelsea, "--frames", 3, "--out", tmp_path / "clip.mov", check=False),
        # A folder with a dot in its name is still a folder when it exists, or when the name ends with /.
        partial(i2v, "generate", "--image", chelsea, "--frames", 3, "--height", 32, "--width", 32, "--out",
                f"{tmp_path / 'v1.0'}/", "--json"),
    )  # fmt: skip
    assert mov.returncode == 2 and "videos are written as MP4, not .mov" in mov.stderr
    assert len(mov.stderr.strip().splitlines()) == 1 and not (tmp_path / "clip.mov").exists()
    assert (tmp_path / "v1.0").is_dir() and json.loads(folder.stdout)["path"].startswith(str(tmp_path / "v1.0"))


def test_generate_with_loras_and_a_speed_mode(tmp_path, chelsea, tiny_models):
    from i2v.tiny import make_tiny_lora

    model = tiny_models["ltx-video"]
    a = make_tiny_lora("ltx-video", tmp_path / "a.safetensors", seed=1)
    b = make_tiny_lora("ltx-video", tmp_path / "b.safetensors", seed=2)
    done, plain = side_by_side(
        partial(i2v, "generate", "--image", chelsea, "--model", model, "--height", 32, "--width", 32, "--frames", 9,
                "--steps", 2, "--lora", f"{a}:0.5", "--lora", b, "--speed", "fast", "--no-compile", "--out",
                tmp_path / "v.mp4", "--json"),
        partial(i2v, "generate", "--image", chelsea, "--model", model, "--height", 32, "--width", 32, "--frames", 9,
                "--steps", 2, "--speed", "fast", "--out", tmp_path / "w.mp4"),
    )  # fmt: skip
    result = json.loads(done.stdout)
    assert [(lora["source"], lora["weight"]) for lora in result["loras"]] == [(str(a), 0.5), (str(b), 1.0)]
    levers = {lever["lever"]: lever for lever in result["levers"]}
    assert levers["quantize"]["applied"] is False and "needs a CUDA GPU" in levers["quantize"]["reason"]["text"]
    assert "compile" not in levers  # --no-compile: not asked for
    assert json.loads((tmp_path / "v.json").read_text())["loras"][1] == {"file": "b.safetensors", "weight": 1.0,
                                                                         "weight_2": None}  # fmt: skip
    assert "compile on: not applied (compile needs a CUDA GPU; this run is on cpu)" in plain.stdout


def test_bad_lora_flags_exit_2_with_one_line(tmp_path, chelsea, tiny_models):
    lora = tmp_path / "l.safetensors"
    lora.write_bytes(b"")
    ckpt, svd = side_by_side(
        partial(i2v, "generate", "--image", chelsea, "--model", "camera", "--lora", "style.ckpt:2", "--out", tmp_path,
                check=False),
        partial(i2v, "generate", "--image", chelsea, "--model", tiny_models["svd-xt"], "--lora", lora, "--out",
                tmp_path, check=False),
    )  # fmt: skip
    assert ckpt.returncode == 2 and "is not FILE[:WEIGHT[:WEIGHT2]]" in ckpt.stderr
    assert len(ckpt.stderr.strip().splitlines()) == 1
    assert svd.returncode == 2 and svd.stderr.strip() == (
        "i2v: error: svd-xt takes no LoRAs (its diffusers pipeline has no LoRA loader): remove l.safetensors")
    assert not list(tmp_path.glob("*.mp4"))


def test_plan_estimates_each_speed_mode():
    def plan(*args):
        return json.loads(i2v("plan", "--vram-gb", 80, "--gpu", "H200", "--ram-gb", 256, "--model",
                              "wan2.1-i2v-14b-480p", "--json", *args).stdout)  # fmt: skip

    exact, fast, turbo, no_turbo = side_by_side(
        partial(plan), partial(plan, "--speed", "fast"), partial(plan, "--speed", "turbo"),
        partial(i2v, "plan", "--vram-gb", 80, "--model", "ltx-video", "--speed", "turbo", check=False),
    )  # fmt: skip
    assert exact["asked"]["quantize"] == "none" and fast["asked"]["quantize"] == "fp8"
    assert fast["asked"]["estimated_peak_gb"] < exact["asked"]["estimated_peak_gb"] - 10  # fp8 weights
    assert fast["asked"]["estimated_seconds"] < exact["asked"]["estimated_seconds"] * 0.75
    assert (turbo["asked"]["num_inference_steps"], turbo["asked"]["guidance_scale"]) == (4, 1.0)
    assert turbo["asked"]["estimated_seconds"] < 20
    assert no_turbo.returncode == 2 and "ltx-video has no turbo mode" in no_turbo.stderr


def test_plan_speed_needs_a_model():
    done = i2v("plan", "--vram-gb", 24, "--speed", "fast", check=False)
    assert done.returncode == 2 and "plan --speed fast (and the single levers) estimate one model: add --model" in done.stderr


def test_segments_interpolation_and_upscaling_from_the_command_line(tmp_path, chelsea):
    out = tmp_path / "long.mp4"
    done = i2v("generate", "--image", chelsea, "--segment", "a cat looks up", "--segment", "the cat turns its head",
               "--camera", "zoom_in", "--height", 32, "--width", 48, "--frames", 5, "--fps", 16, "--seed", 3,
               "--interpolate", 2, "--upscale", 2, "--out", out, "--json")  # fmt: skip
    result = json.loads(done.stdout)
    assert [(s["prompt"], s["seed"]) for s in result["segments"]] == [("a cat looks up", 3),
                                                                        ("the cat turns its head", 4)]  # fmt: skip
    # 5 + 4 frames made at 8 fps (the file's 16 over x2), interpolated x2: 17 at 16 fps; upscaled x2 with Lanczos
    # (no upscaler folder here)
    assert (result["num_frames"], result["fps"], result["width"], result["height"]) == (17, 16, 96, 64)
    assert result["upscaler"] == "lanczos" and result["segment_frames"] == 5
    frames, meta = read_mp4(out)
    assert frames.shape == (17, 64, 96, 3) and meta["fps"] == 16


def test_bad_long_video_flags_exit_2_with_one_line(tmp_path, chelsea):
    cases = ((["--keyframe", "photo.png"], "give PATH@FRAME"), (["--interpolate", "3"], "invalid choice"),
             (["--loop"], "cannot loop"), (["--duration", "0"], "greater than 0"))
    runs = side_by_side(*(partial(i2v, "generate", "--image", chelsea, *flags, "--out", tmp_path / "x.mp4", check=False)
                          for flags, _ in cases))  # fmt: skip
    for (flags, words), done in zip(cases, runs):
        assert done.returncode == 2 and words in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert not (tmp_path / "x.mp4").exists()


def test_plan_estimates_a_long_video_and_its_post_processing():
    one, long = (json.loads(done.stdout) for done in side_by_side(
        partial(i2v, "plan", "--vram-gb", 80, "--model", "wan2.1-i2v-14b-480p", "--json"),
        partial(i2v, "plan", "--vram-gb", 80, "--model", "wan2.1-i2v-14b-480p", "--segments", 3, "--interpolate", 2,
                "--upscale", 2, "--json"),
    ))  # fmt: skip
    assert long["asked"]["estimated_peak_gb"] == one["asked"]["estimated_peak_gb"]  # one segment at a time
    made = long["long"]
    assert made["render_seconds"] == pytest.approx(3 * one["asked"]["estimated_seconds"], rel=0.01)
    assert (made["num_frames"], made["width"], made["height"]) == ((81 + 80 + 80 - 1) * 2 + 1, 1664, 960)
    assert made["interpolate_seconds"] > 0 and made["upscale_seconds"] > 0 and made["host_gb"] > 1


def test_plan_refuses_a_segment_count_out_of_range_and_long_flags_without_a_model():
    out_of_range, no_model = [0, 40], [["--segments", 3], ["--interpolate", 2, "--upscale", 4]]
    runs = side_by_side(
        *(partial(i2v, "plan", "--vram-gb", 80, "--model", "wan2.1-i2v-14b-480p", "--segments", value, check=False)
          for value in out_of_range),
        *(partial(i2v, "plan", "--vram-gb", 24, *flags, check=False) for flags in no_model),
    )  # fmt: skip
    for done in runs[:2]:
        assert done.returncode == 2 and "1 to 32 segments" in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    for flags, done in zip(no_model, runs[2:]):
        assert done.returncode == 2 and "add --model" in done.stderr and str(flags[0]) in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


def test_plan_names_the_interpolator_and_the_long_videos_total_time(tmp_path):
    import torch

    from i2v.rife import IFNet

    plan = ("plan", "--vram-gb", 80, "--model", "wan2.1-i2v-14b-480p", "--segments", 3, "--interpolate", 2)
    rife = tmp_path / "rife"  # RIFE v4.6 weights (random), saved as the published flownet.pkl is
    rife.mkdir()
    torch.manual_seed(0)
    torch.save({f"module.{key}": value for key, value in IFNet().state_dict().items()}, rife / "flownet.pkl")
    env = {"I2V_INTERPOLATOR_DIR": str(rife)}
    text, made, with_rife = (done.stdout for done in side_by_side(
        partial(i2v, *plan), partial(i2v, *plan, "--json"), partial(i2v, *plan, env=env)))  # fmt: skip
    assert "interpolation x2 (optical flow, CPU)" in text and "min in all" in text, text
    made = json.loads(made)
    long = made["long"]
    assert made["interpolation"] == "optical_flow"
    assert long["seconds"] == pytest.approx(long["render_seconds"] + long["interpolate_seconds"], abs=0.1)
    assert f"~{long['seconds'] / 60:.1f} min in all" in text
    assert "interpolation x2 (RIFE)" in with_rife


def test_a_duration_gets_a_storyboard_from_the_i2v_command(tmp_path, chelsea):
    # 3 s at 8 fps is 24 frames: segments of 9 frames make 9, then 8 and 8 more: three segments
    flags = ("generate", "--image", chelsea, "--prompt", "a cat turns its head", "--duration", 3, "--frames", 9,
             "--fps", 8, "--height", 32, "--width", 32, "--seed", 3, "--json")  # fmt: skip
    done, plain = side_by_side(partial(i2v_command, *flags, "--out", tmp_path / "board.mp4"),
                               partial(i2v, *flags, "--out", tmp_path / "plain.mp4"))  # fmt: skip
    prompts = [segment["prompt"] for segment in json.loads(done.stdout)["segments"]]
    assert len(prompts) == 3 and "Continuing from the previous shot" not in prompts[0], prompts  # the offline rules
    assert all("Continuing from the previous shot" in prompt and "a cat turns its head" in prompt
               for prompt in prompts[1:]), prompts  # fmt: skip
    assert "storyboard: 3 segments of 1.0 s" in done.stderr and f"3. {prompts[2]}" in done.stderr
    # The engine's own command has no refiner: each segment continues the one prompt
    assert [s["prompt"] for s in json.loads(plain.stdout)["segments"]] == ["a cat turns its head"] * 3
    assert "storyboard" not in plain.stderr


@pytest.fixture
def generate_command(cli_in_process):
    """`i2v generate ARGS` run in this process (tests/conftest.py's `cli_in_process`): (exit code,
    stdout, stderr)."""
    return lambda *args: cli_in_process("generate", *args)


def test_references_and_a_soundtrack_from_the_command_line(generate_command, tmp_path, chelsea, coffee, tiny_models):
    from test_service_issue15 import write_wav

    from i2v.export import read_audio

    sound = write_wav(tmp_path / "song.wav", 3.0)  # longer than either video: trimmed to its length
    code, out, err = generate_command("--image", chelsea, "--camera", "pan_left", "--frames", 12, "--fps", 8,
                                      "--height", 64, "--width", 64, "--soundtrack", sound, "--out", tmp_path,
                                      "--json")  # fmt: skip
    assert code == 0, err
    camera = json.loads(out)
    assert (camera["has_audio"], camera["audio"]) == (True, "soundtrack")
    frames, meta = read_mp4(camera["path"])
    samples, rate = read_audio(camera["path"])
    assert len(frames) / meta["fps"] == 12 / 8 and abs(samples.shape[-1] / rate - 12 / 8) < 0.1  # the video's 1.5 s
    assert "sound.trimmed" in [said["code"] for said in camera["adjustments"]]
    code, out, err = generate_command("--image", chelsea, "--camera", "pan_left", "--reference", f"{coffee}=the mug",
                                      "--out", tmp_path)  # fmt: skip
    assert code == 2 and not out and "camera takes no reference images" in err, err  # it holds no subjects
    code, out, err = generate_command("--image", chelsea, "--model", tiny_models["wan-vace-1.3b"], "--prompt", "a cat",
                                      "--reference", f"{coffee}=the mug", "--soundtrack", sound, "--frames", 13,
                                      "--height", 32, "--width", 32, "--steps", 2, "--seed", 3,
                                      "--out", tmp_path / "vace.mp4", "--json")  # fmt: skip
    assert code == 0, err
    vace = json.loads(out)
    assert (vace["has_audio"], vace["audio"], vace["num_frames"]) == (True, "soundtrack", 13)
    assert [(Path(ref["source"]).name, ref["label"]) for ref in vace["references"]] == [("coffee.png", "the mug")]
    frames, meta = read_mp4(vace["path"])
    samples, rate = read_audio(vace["path"])
    assert abs(samples.shape[-1] / rate - len(frames) / meta["fps"]) < 0.1  # as long as the video
