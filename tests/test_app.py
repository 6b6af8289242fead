"""The web app driven through its named API endpoints with gradio_client, around a tiny model."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from i2v.export import read_mp4


# fps 24: the tiny Wan 2.2 TI2V's own (the fps is the file's: more is interpolated, fewer drops frames)
def generate_args(photo, prompt, refined, model, steps=2, seed=5, auto=True):
    return dict(
        image=handle_file(str(photo)), prompt=prompt, refined=refined, negative="", camera="static", model=model,
        height=64, width=64, num_frames=9, fps=24, steps=steps, guidance=5.0, seed=seed, auto_refine=auto,
        strategy="auto", tiling=False,
    )  # fmt: skip


def call_generate(client, args, **kwargs):
    return client.predict(*args.values(), api_name="/generate", **kwargs)


def test_refine_edit_generate(app_url, tiny_model, chelsea):
    url, out = app_url
    client = Client(url, verbose=False)
    refined, negative, camera, details, *_ = client.predict("镜头慢慢推近，猫转头", handle_file(str(chelsea)), tiny_model,
                                                             api_name="/refine")  # fmt: skip
    assert refined.startswith("镜头慢慢推近") and camera == "dolly_in" and negative
    assert "offline" in details  # no LLM endpoint in this app
    edited = refined + " EDITED by hand."
    video, params, table, used, *_ = call_generate(client, generate_args(chelsea, "镜头慢慢推近，猫转头", edited, tiny_model))
    assert used == edited and params["prompt"] == edited  # the hand edit is what the model got
    assert params["seed"] == 5 and params["family"] == "wan2.2-ti2v-5b"
    frames, _ = read_mp4(params["output_path"])
    assert frames.shape == (9, 64, 64, 3)
    assert table["data"][-1][2:5] == ["done", "wan2.2-ti2v-5b", 5]  # the history row: status, model, seed


def test_generate_without_refining_refines_first(app_url, tiny_model, chelsea):
    url, _ = app_url
    client = Client(url, verbose=False)
    video, params, table, used, negative, camera, details = call_generate(
        client, generate_args(chelsea, "向左平移镜头", "", tiny_model)
    )
    assert used.startswith("向左平移镜头") and "pans slowly to the left" in used
    assert params["prompt"] == used and camera == "pan_left" and "offline" in details


def test_auto_refine_off_uses_own_words(app_url, tiny_model, chelsea):
    url, _ = app_url
    client = Client(url, verbose=False)
    _, params, *_ = call_generate(client, generate_args(chelsea, "the cat yawns", "", tiny_model, auto=False))
    assert params["prompt"] == "the cat yawns"


def test_stop_really_stops_and_leaves_no_file(app_url, tiny_model, chelsea):
    url, out = app_url
    client = Client(url, verbose=False)
    before = sorted(out.iterdir())
    job = client.submit(*generate_args(chelsea, "cat", "a cat", tiny_model, steps=100).values(), api_name="/generate")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until the denoising loop runs
        update = job.status()
        if update.progress_data and any("denoising" in (p.desc or "") for p in update.progress_data):
            break
        time.sleep(0.2)
    else:
        pytest.fail("the job never started denoising")
    client.predict(api_name="/stop")
    result = job.result(timeout=60)
    assert result[1] == {"stopped": True}
    assert sorted(out.iterdir()) == before
    # The GPU slot is free again.
    _, params, *_ = call_generate(client, generate_args(chelsea, "cat", "a cat", tiny_model))
    assert params["num_frames"] == 9


def test_user_errors_come_back_as_messages(app_url, tiny_model, chelsea, tmp_path):
    url, _ = app_url
    client = Client(url, verbose=False)
    args = generate_args(chelsea, "cat", "a cat", tiny_model)
    args["image"] = None
    with pytest.raises(AppError, match="Upload a photo first"):
        call_generate(client, args)
    args = generate_args(chelsea, "cat", "a cat", tiny_model)
    args["num_frames"] = 200  # the sliders carry the family's bounds, and the engine checks them
    with pytest.raises(AppError, match="num_frames 201 is more than wan2.2-ti2v-5b can make: at most 161"):
        call_generate(client, args)
    args = generate_args(chelsea, "cat", "a cat", tiny_model)
    args["height"] = 5000  # beyond any model: the request's own bound, named
    with pytest.raises(AppError, match="height 5000 is too large: at most 2160"):
        call_generate(client, args)
    broken = tmp_path / "broken.png"
    broken.write_bytes(chelsea.read_bytes()[:120_000])  # the header is whole, the pixels are not
    args = generate_args(broken, "cat", "a cat", tiny_model)
    with pytest.raises(AppError, match="damaged or truncated"):
        call_generate(client, args)


def wait_until_denoising(job, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        update = job.status()
        if update.progress_data and any("denoising" in (p.desc or "") for p in update.progress_data):
            return
        time.sleep(0.1)
    pytest.fail("the job never started denoising")


def wait_until_queued(job, seconds=30):
    """Until the job waits in the studio's queue (the job store's): its progress says so."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        update = job.status()
        if update.progress_data and any("Waiting in the queue" in (p.desc or "") for p in update.progress_data):
            return
        if job.done():
            pytest.fail(f"the job ended instead of waiting: {job.result()}")
        time.sleep(0.05)
    pytest.fail("the job never joined the queue")


def test_queue_is_bounded_and_stop_never_waits_behind_it(app_url, tiny_model, chelsea):
    # The app's queue holds 2 videos (I2V_QUEUE_SIZE in the fixture): one runs, two wait, a fourth
    # is refused. Stop must still answer at once: it was refused with "Queue is full".
    url, out = app_url
    clients = [Client(url, verbose=False) for _ in range(4)]
    slow = generate_args(chelsea, "cat", "a cat", tiny_model, steps=200)
    slow.update(height=256, width=256, num_frames=65)  # over a minute here: it is stopped long before
    jobs = [clients[0].submit(*slow.values(), api_name="/generate")]
    wait_until_denoising(jobs[0])
    for client in clients[1:3]:  # one at a time, so that the fourth is the one refused
        jobs.append(client.submit(*slow.values(), api_name="/generate"))
        wait_until_queued(jobs[-1])
    jobs.append(clients[3].submit(*slow.values(), api_name="/generate"))
    with pytest.raises(Exception, match="(?i)queue is full"):
        jobs[3].result(timeout=30)
    before = sorted(out.iterdir())
    started = time.monotonic()
    clients[2].predict(api_name="/stop")  # the waiting jobs: they must never start
    clients[1].predict(api_name="/stop")
    clients[0].predict(api_name="/stop")  # the running one
    assert time.monotonic() - started < 20, "Stop waited behind the queue"
    for job in jobs[:3]:
        assert job.result(timeout=60)[1] == {"stopped": True}
    assert sorted(out.iterdir()) == before  # no video was written by any of them


def test_bad_photos_get_our_own_words_and_no_server_path(app_url, tiny_model, tmp_path):
    # gradio opened uploads itself and answered "Could not preprocess input component" with a path
    # inside its temp folder; the engine's one-line message comes back instead, also from /refine.
    from PIL import Image

    url, _ = app_url
    client = Client(url, verbose=False)
    bomb = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000)).save(bomb)  # 400 megapixels in a small file
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("this is not a picture\n")
    cases = [(bomb, "photo bomb.png is too large to decode safely"), (empty, r"photo empty.png is empty \(0 bytes\)"),
             (text, r"notes.png is not an image we can read")]  # fmt: skip
    for photo, words in cases:
        with pytest.raises(AppError) as caught:
            call_generate(client, generate_args(photo, "cat", "a cat", tiny_model))
        message = str(caught.value)
        assert re.search(words, message), message
        assert "preprocess" not in message and "/tmp" not in message and str(tmp_path) not in message
    refined = client.predict("cat", handle_file(str(text)), tiny_model, api_name="/refine")
    assert refined[0]  # the refiner does not need to read the photo to refine


def test_the_page_speaks_the_browsers_language(app_url, tiny_model, chelsea):
    # Labels followed the browser's language, but refine details, warnings, errors and toasts were English.
    url, _ = app_url
    client = Client(url, verbose=False, headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    refined, negative, camera, details = client.predict("火箭升空，镜头推近", handle_file(str(chelsea)), tiny_model,
                                                         api_name="/refine")  # fmt: skip
    assert "镜头" in details and "未翻译" in details and "Camera" not in details
    assert "rocket" in details and "fire" not in details
    args = generate_args(chelsea, "cat", "a cat", tiny_model)
    args["image"] = None
    with pytest.raises(AppError, match="请先上传照片"):
        call_generate(client, args)
    args = generate_args(chelsea, "cat", "a cat", tiny_model)
    args["num_frames"] = 200
    with pytest.raises(AppError, match="帧数 201 超出 wan2.2-ti2v-5b 的能力：最多 161"):
        call_generate(client, args)
    _, _, table, *_ = call_generate(client, generate_args(chelsea, "cat", "a cat", tiny_model))
    assert table["headers"][1:4] == ["时间", "状态", "模型"]
    english = Client(url, verbose=False)
    assert "Camera" in english.predict("cat", handle_file(str(chelsea)), tiny_model, api_name="/refine")[3]


def test_the_page_shows_a_video_through_one_cached_copy_never_the_output_folder(app_url, tiny_model, chelsea,
                                                                                tmp_path):  # fmt: skip
    # gradio serves nothing of the output folder (it holds every user's videos and the job store):
    # the page gets one copy in gradio's cache, which gradio removes a day later (delete_cache).
    import httpx

    url, out = app_url
    cache = Path(os.environ["GRADIO_TEMP_DIR"])
    before = set(cache.rglob("*.mp4"))
    client = Client(url, verbose=False, download_files=str(tmp_path / "downloads"))
    video, params, *_ = call_generate(client, generate_args(chelsea, "cat", "a cat", tiny_model))
    original = Path(params["output_path"])
    assert original.parent == out and Path(video).read_bytes() == original.read_bytes()
    (copy,) = set(cache.rglob("*.mp4")) - before
    assert copy.read_bytes() == original.read_bytes()
    assert httpx.get(f"{url}gradio_api/file={original}", timeout=30).status_code == 403
    assert httpx.get(f"{url}gradio_api/file={copy}", timeout=30).status_code == 200


def test_a_bad_request_leaves_no_traceback_in_the_log(app_url, tiny_model, chelsea, capfd):
    url, _ = app_url
    client = Client(url, verbose=False)
    capfd.readouterr()
    args = generate_args(chelsea, "cat", "a cat", tiny_model)
    args["num_frames"] = 200
    with pytest.raises(AppError):
        call_generate(client, args)
    args["image"] = None
    with pytest.raises(AppError):
        call_generate(client, args)
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err, err


def test_settings_are_validated_with_clear_messages(monkeypatch):
    from pydantic import ValidationError

    from settings import Settings

    with pytest.raises(ValidationError, match="must start with http"):
        Settings(openai_base_url="api.example.com")
    with pytest.raises(ValidationError, match="port"):
        Settings(port=70000)
    with pytest.raises(ValidationError, match="user:password"):
        Settings(auth="nopassword")
    # Every memory strategy the page and the CLI offer is a valid I2V_OFFLOAD (group was refused).
    assert [Settings(offload=s).offload for s in ("none", "model", "group", "sequential")] == [
        "none", "model", "group", "sequential"]  # fmt: skip
    with pytest.raises(ValidationError, match="offload"):
        Settings(offload="auto-ish")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-hidden-123")
    monkeypatch.setenv("I2V_LLM_MODEL", "deepseek-chat")
    monkeypatch.setenv("OPENAI_BASE_URL", "https://api.deepseek.com/v1/")
    settings = Settings()
    assert settings.llm_configured and settings.openai_base_url == "https://api.deepseek.com/v1"
    assert "sk-hidden-123" not in repr(settings) and "sk-hidden-123" not in str(settings.model_dump())
    done = subprocess.run([sys.executable, "app.py", "--port", "99999"], capture_output=True, text=True,
                          cwd=str(__import__("settings").ROOT))  # fmt: skip
    assert done.returncode == 2 and "settings: port" in done.stderr and "Traceback" not in done.stderr


def studio_for(model: str):
    from app import make_services
    from settings import Settings

    return make_services(Settings(model=model, device="cpu")).studio


def test_model_list_shows_camera_and_present_weights(tiny_model):
    choices = dict((value, label) for label, value in studio_for(tiny_model).choices())
    assert list(choices)[0] == "camera" and tiny_model in choices
    assert "wan2.2-ti2v-5b" not in choices  # no weights for the hub id in this test's empty cache
    assert [value for _, value in studio_for("auto").choices()] == ["camera"]


def panel_text(panel) -> str:
    return "\n\n".join(str(line) for line in panel.lines)


def test_gpu_panel_shows_the_preset_and_a_plan_that_can_be_applied():
    from i2v.families import get_family
    from i2v.hardware import GPU, Hardware
    from i2v.memory import RunShape, estimate, presets, usable_gb
    from studio import gpu_panel

    card = Hardware((GPU(0, "NVIDIA GeForce RTX 4090", 24.0, 23.5),), 128.0)
    wan = RunShape("wan2.1-i2v-14b-720p", 720, 1280, 81, 40)
    panel = gpu_panel(card, "cuda", get_family(wan.family), wan, False, ["wan2.1-i2v-14b-720p", "ltx-video"])
    text = panel_text(panel)
    assert "RTX 4090" in text and "Preset for this GPU" in text and "does not fit" in text
    assert panel.actions["preset"].family in ("wan2.1-i2v-14b-720p", "ltx-video")
    assert estimate(panel.actions["plan"]).peak_gb <= usable_gb(23.5)
    assert "1. VAE tiling on" in text
    # The times on the panel are all for this card (a 4090), like the preset's, not an H200's.
    asked = estimate(wan)
    assert f"~{asked.seconds * presets()['planner']['speed']['4090'] / 60:.1f} min: **does not fit**" in text
    a480 = RunShape("wan2.1-i2v-14b-480p", 480, 832, 81, 40)
    auto_text = panel_text(gpu_panel(card, "cuda", get_family(a480.family), a480, True))
    assert "auto: group offload" in auto_text or "auto: model offload" in auto_text
    assert "GB host RAM" in auto_text  # offloaded weights wait in host RAM: the panel says how much
    small_ram = Hardware(card.gpus, 32.0)  # Wan 2.2 A14B's 64 GB of weights cannot be offloaded here
    a14b = RunShape("wan2.2-i2v-a14b", 480, 832, 81, 40)
    assert "does not fit" in panel_text(gpu_panel(small_ram, "cuda", get_family(a14b.family), a14b, True))
    # The panel describes the GPU the engine runs on (it said GPU 0 with I2V_DEVICE=cuda:1).
    two = Hardware((GPU(0, "NVIDIA A100-SXM4-80GB", 80.0, 79.0), GPU(1, "NVIDIA GeForce RTX 4090", 24.0, 23.5)), 128.0)
    on_second = panel_text(gpu_panel(two, "cuda:1", get_family(wan.family), wan, False))
    assert "GPU 1 (used): NVIDIA GeForce RTX 4090" in on_second and "Usable for a run: 21.6 GB" in on_second
    cpu = gpu_panel(Hardware((), 24.0), "cpu", get_family("camera"), None, True)
    assert "CPU only" in panel_text(cpu) and cpu.actions == {}


def test_a_slow_plan_is_shown_with_its_faster_smaller_video():
    from i2v.families import get_family
    from i2v.hardware import GPU, Hardware
    from i2v.memory import RunShape
    from studio import gpu_panel

    card = Hardware((GPU(0, "NVIDIA GeForce RTX 4090", 24.0, 23.5),), 128.0)
    asked = RunShape("i2vgen-xl", 1024, 1024, 32, 50)
    panel = gpu_panel(card, "cuda", get_family(asked.family), asked, False)
    text = panel_text(panel)
    assert "sequential offload" in text and "Faster, with a smaller video" in text
    assert panel.actions["plan"].num_frames == 32 and panel.actions["plan"].memory_strategy == "sequential"
    faster = panel.actions["faster"]
    assert faster.num_frames < 32 or faster.height < 1024
    # With memory strategy auto (the page's default) too: auto would take sequential offload.
    auto = gpu_panel(card, "cuda", get_family(asked.family), asked, True)
    assert "auto: sequential offload" in panel_text(auto) and auto.actions["faster"] == faster


def test_a_full_disk_reads_as_one_line_in_the_pages_language_without_the_server_path():
    # The page showed a raw "Broken pipe ... FFMPEG COMMAND" dump, or left a 0-byte video.
    from i2v.errors import DiskFull

    studio = studio_for("camera")
    error = DiskFull("export.disk_full", directory="/srv/i2v/outputs", free_mb=0.4)
    english, chinese = studio.explain(error, "en"), studio.explain(error, "zh")
    assert english.startswith("not enough space in outputs: 0.4 MB free") and "/srv" not in english
    assert chinese.startswith("outputs 空间不足") and "\n" not in chinese
    assert studio.explain(RuntimeError("a bug"), "en") is None  # not ours to word: logged with its traceback


def test_load_from_history_gives_the_settings_back_but_keeps_the_photo():
    studio = studio_for("camera")
    item = {"image": "chelsea.png", "prompt": "a cat", "negative_prompt": "", "camera_motion": "pan_left",
            "model": "camera", "height": 64, "width": 96, "num_frames": 9, "fps": 8, "num_inference_steps": None,
            "guidance_scale": None, "seed": 5, "memory_strategy": "none", "vae_tiling": False}  # fmt: skip
    values = studio.from_history([item], 0)
    assert "image" not in values  # the history holds only the photo's name; the form keeps its photo
    assert (values["prompt"], values["width"], values["seed"], values["camera_motion"]) == ("a cat", 96, 5, "pan_left")
    with pytest.raises(Exception, match="Pick a video of this session first"):
        studio.from_history([item], 3)


def test_the_api_keeps_its_parameter_names(app_url, tiny_model, chelsea):
    url, _ = app_url
    client = Client(url, verbose=False)
    named = generate_args(chelsea, "the cat yawns", "a cat yawns", tiny_model)
    _, params, *_ = client.predict(**named, api_name="/generate")  # by name, as "Use via API" shows
    assert params["prompt"] == "a cat yawns" and params["num_frames"] == 9
    assert client.predict(prompt="cat", image=handle_file(str(chelsea)), model=tiny_model, api_name="/refine")[0]


def test_the_page_offers_the_lora_folders_files_by_name_only(tiny_model, chelsea, tmp_path, monkeypatch):
    from app import make_services
    from i2v.tiny import make_tiny_lora
    from settings import Settings
    from studio import StudioError

    folder = tmp_path / "loras"
    make_tiny_lora("wan2.2-ti2v-5b", folder / "glow.safetensors", seed=1)
    (folder / "notes.txt").write_text("not a LoRA")
    studio = make_services(Settings(model=tiny_model, device="cpu", output_dir=tmp_path / "out",
                                    lora_dir=folder)).studio  # fmt: skip
    assert studio.lora_files() == ["glow.safetensors"]
    form = dict(image=str(chelsea), words="a cat", prompt="a cat turns", model=tiny_model, height=32, width=32,
                num_frames=9, fps=8, num_inference_steps=2, guidance_scale=5.0, seed=3, auto_refine=False,
                lora_1="glow.safetensors", lora_weight_1=0.6, speed="fast")  # fmt: skip
    outcome = studio.run(form, {}, "en", None, threading.Event())
    assert outcome.params["loras"] == [{"file": "glow.safetensors", "weight": 0.6, "weight_2": None}]
    assert str(folder) not in str(outcome.params["loras"])
    assert {lever["lever"] for lever in outcome.params["levers"]} == {"quantize", "compile", "step_cache"}
    for bad in ("../glow.safetensors", str(folder / "glow.safetensors"), "missing.safetensors"):
        with pytest.raises(StudioError, match="is not in the LoRA folder"):
            studio.request({**form, "lora_1": bad})
    again = studio.from_history([outcome.history_item], 0)
    assert (again["lora_1"], again["lora_weight_1"], again["lora_2"]) == ("glow.safetensors", 0.6, None)
    assert again["speed"] == "fast"


def test_the_panel_says_how_long_each_speed_mode_takes():
    from i2v.families import get_family
    from i2v.hardware import GPU, Hardware
    from i2v.memory import RunShape, estimate, presets
    from studio import gpu_panel

    card = Hardware((GPU(0, "NVIDIA H100 80GB HBM3", 80.0, 79.0),), 256.0)
    wan = RunShape("wan2.1-i2v-14b-480p", 480, 832, 81, 40)
    text = panel_text(gpu_panel(card, "cuda", get_family(wan.family), wan, False))
    factor = presets()["planner"]["speed"]["H100"]
    exact = estimate(wan).seconds * factor / 60
    fast = estimate(wan.with_(quantize="fp8", compile=True)).seconds * factor / 60
    turbo = estimate(wan.with_(quantize="fp8", compile=True, num_inference_steps=4, guidance_scale=1.0)).seconds
    assert f"exact ~{exact:.1f} min · fast ~{fast:.1f} min · turbo ~{turbo * factor / 60:.1f} min" in text
    assert fast < exact * 0.75 and turbo * factor / 60 < fast / 5
    ltx = RunShape("ltx-video", 480, 704, 161, 50)
    assert "turbo — min" in panel_text(gpu_panel(card, "cuda", get_family(ltx.family), ltx, False))
    # fp8 takes the weights down: on a 40 GB card, fast keeps Wan 14B all on the GPU where exact cannot
    small = Hardware((GPU(0, "NVIDIA L40S", 48.0, 40.0),), 256.0)
    exact_text = panel_text(gpu_panel(small, "cuda", get_family(wan.family), wan, True))
    fast_text = panel_text(gpu_panel(small, "cuda", get_family(wan.family), wan, True, speed="fast"))
    assert "auto: all on the GPU" not in exact_text and "auto: all on the GPU" in fast_text


def test_the_api_takes_speed_and_loras_by_name(app_url, tiny_model, chelsea):
    url, _ = app_url
    client = Client(url, verbose=False)
    named = {**generate_args(chelsea, "the cat yawns", "a cat yawns", tiny_model), "speed": "fast"}
    _, params, *_ = client.predict(**named, api_name="/generate")
    assert params["speed"] == "fast" and params["quantize"] == "none"  # no GPU here: said in levers
    assert params["levers"][0]["reason"]["text"] == "fp8 needs a CUDA GPU; this run is on cpu"
    with pytest.raises(AppError, match="is not in the LoRA folder"):
        client.predict(**{**named, "lora_1": "/etc/passwd"}, api_name="/generate")


def test_turbo_on_the_page_runs_the_distilled_steps_and_the_preset_keeps_guidance(tiny_model):
    # Review findings: turbo ran the sliders' 40 steps; "Use this GPU's preset" set guidance to 0.
    studio = studio_for(tiny_model)
    assert studio.speed_settings("wan2.1-i2v-14b-480p", "turbo") == {"num_inference_steps": 4, "guidance_scale": 1.0}
    assert studio.speed_settings("wan2.1-i2v-14b-480p", "exact") == {"num_inference_steps": 40, "guidance_scale": 5.0}
    assert studio.speed_settings("ltx-video", "turbo")["num_inference_steps"] == 50  # no turbo: its own
    form = dict(image="photo.png", model="wan2.1-i2v-14b-480p", speed="turbo", num_inference_steps=40,
                guidance_scale=5.0, height=480, width=832, num_frames=81)  # fmt: skip
    request = studio.request(form)
    assert request.num_inference_steps is None and request.guidance_scale is None  # turbo's own apply
    assert studio.request({**form, "num_inference_steps": 6}).num_inference_steps == 6  # a person's own win
    preset = {"preset": {"family": "wan2.1-i2v-14b-480p", "height": 480, "width": 832, "num_frames": 81,
                         "num_inference_steps": 40, "memory_strategy": "group", "vae_tiling": False,
                         "quantize": "none", "compile": False, "guidance_scale": None}}  # fmt: skip
    applied = studio.apply("preset", preset, tiny_model)
    assert "guidance_scale" not in applied and applied["num_inference_steps"] == 40
    plan = {"plan": {**preset["preset"], "num_inference_steps": 4, "guidance_scale": 1.0}}
    assert "num_inference_steps" not in studio.apply("plan", plan, tiny_model)


def test_the_single_levers_on_the_page_win_over_speed(tiny_model):
    studio = studio_for(tiny_model)
    form = dict(image="photo.png", model=tiny_model, speed="fast", quantize="none", compile="off", step_cache="auto")
    request = studio.request(form)
    assert (request.quantize, request.compile, request.step_cache) == ("none", False, None)
    assert studio.request({**form, "compile": "on", "quantize": "auto"}).compile is True
    assert studio.request({**form, "quantize": "auto"}).quantize is None


def test_exact_and_fast_keep_a_persons_steps_and_turbo_follows_the_model(tiny_model):
    studio = studio_for(tiny_model)
    assert studio.speed_settings("wan2.1-i2v-14b-480p", "fast", 25, 4.0) == {"num_inference_steps": 25,
                                                                             "guidance_scale": 4.0}  # fmt: skip
    assert studio.speed_settings("wan2.1-i2v-14b-480p", "exact", 4, 1.0)["num_inference_steps"] == 40  # left turbo
    preset = {"preset": {"family": "wan2.1-i2v-720p", "height": 720, "width": 1280, "num_frames": 81,
                         "num_inference_steps": 40, "memory_strategy": "none", "vae_tiling": False}}  # fmt: skip
    applied = studio.apply("preset", preset, "wan2.1-i2v-14b-720p", "turbo")
    assert (applied["num_inference_steps"], applied["guidance_scale"]) == (4, 1.0)


def test_a_storyboard_for_a_duration_then_a_long_video_from_the_page(app_url, tiny_model, chelsea):
    url, _ = app_url
    client = Client(url, verbose=False)
    named = {**generate_args(chelsea, "猫转头", "", tiny_model), "duration": 0.7}
    # 0.7 s at the model's 24 fps is 17 frames: segments of 9 frames make 9, then 8 more: two segments
    segments, negative, details = client.predict(**named, api_name="/storyboard")
    lines = segments.splitlines()
    assert len(lines) == 2 and "Continuing from the previous shot" in lines[1], segments  # the offline rules
    assert "2 segments" in details
    edited = "a cat looks up\nthe cat turns its head to the window"
    _, params, *_ = client.predict(**{**named, "segments": edited, "interpolate": "x2", "fps": 48,
                                      "keep_segments": True}, api_name="/generate")  # fmt: skip
    assert [s["prompt"] for s in params["segments"]] == edited.splitlines() and params["prompt"] == "a cat looks up"
    # 9 + 8 = 17 frames, interpolated x2: 33 at 48 fps (the page's x2 sets the fps to twice the model's)
    assert (params["num_frames"], params["fps"], params["segment_frames"]) == (33, 48, 9)
    frames, meta = read_mp4(Path(params["output_path"]))
    assert len(frames) == 33 and meta["fps"] == 48
    with pytest.raises(AppError, match="cannot end on a given frame"):
        client.predict(**{**named, "loop": True}, api_name="/generate")


def test_the_segments_box_wins_over_a_stale_prompt_box_and_the_page_says_so(app_url, tiny_model, chelsea):
    import asyncio

    url, _ = app_url
    client = Client(url, verbose=False)
    lines = ["a cat looks up", "the cat turns its head"]
    named = {**generate_args(chelsea, "猫转头", "a refined prompt of an earlier video", tiny_model),
             "segments": "\n".join(lines)}  # fmt: skip
    job = client.submit(**named, api_name="/generate")
    _, params, _, used, *_ = job.result(timeout=300)
    assert [s["prompt"] for s in params["segments"]] == lines and params["prompt"] == lines[0]
    assert used == ""  # the prompt box: a one-segment video's, left empty beside segments
    said = []
    while True:
        try:
            update = job.communicator.updates.get_nowait()
        except asyncio.QueueEmpty:
            break
        said += [update.log[0]] if getattr(update, "log", None) else []
    assert any("The segments' prompts were used" in text for text in said), said


# ---------------------------------------------------------------------- issue 15: subjects, sound, templates, advice
@pytest.fixture
def page(tiny_model, tmp_path):
    """The page built around the tiny model's studio, not served: its events' functions are called as
    gradio calls them, and what they answer is read by the components' elem_ids."""
    from app import build_demo, make_services
    from settings import Settings

    services = make_services(Settings(model=tiny_model, device="cpu", output_dir=tmp_path / "out"))
    demo = build_demo(services)
    yield {fn.fn.__name__: fn for fn in demo.fns.values() if hasattr(fn.fn, "__name__")}
    services.hosting.close()


def asked(language: str = "en"):
    import gradio as gr

    return gr.Request(headers={"accept-language": language}, username=None, session_hash="test")


def by_id(answer: dict) -> dict:
    """An event's answer by elem_id (the States, which have none, by their class and place)."""
    return {getattr(component, "elem_id", None) or f"{type(component).__name__}{i}": value
            for i, (component, value) in enumerate(answer.items())}  # fmt: skip


def refine_on_the_page(page, language="en", **values):
    """The page's Refine with the form's values by their API names (prompt, image, model, template, ...)."""
    refine = page["refine"].fn
    names = list(inspect.signature(refine).parameters)[1:]
    answer = refine(asked(language), *[values.get(name) for name in names])
    advice = next(value for value in answer.values() if isinstance(value, dict) and "values" in value)
    return by_id(answer), advice


def test_the_subjects_and_the_soundtrack_follow_what_the_model_takes(page, tiny_model, chelsea):
    capabilities = page["on_capabilities"].fn
    vace = by_id(capabilities("wan-vace-1.3b", asked()))
    assert vace["subjects-box"]["visible"] and not vace["no-subjects"]["visible"]
    assert vace["soundtrack"]["visible"] and not vace["own-sound"]["visible"]
    assert "reference-1" not in vace and "value" not in vace["soundtrack"]  # shown: what was there stays
    wan = by_id(capabilities(tiny_model, asked()))  # no references: the slots hidden and emptied, a note says why
    assert not wan["subjects-box"]["visible"] and wan["no-subjects"]["visible"]
    assert [wan[f"reference-{n}"] for n in range(1, 5)] == [None] * 4 and wan["reference-label-1"] is None
    ltx2 = by_id(capabilities("ltx-2", asked()))  # makes its own sound: no soundtrack travels
    assert not ltx2["soundtrack"]["visible"] and ltx2["soundtrack"]["value"] is None and ltx2["own-sound"]["visible"]
    # The subjects' pictures, a clip among them, captioned with their labels; empty slots left out.
    shown = page["show_subjects"].fn(str(chelsea), None, "/x/clip.mp4", None, " the grey cat ", "", "", "")
    assert shown == [(str(chelsea), "the grey cat"), ("/x/clip.mp4", None)]


def test_a_template_shows_what_it_does_and_sets_nothing(page, tiny_model):
    show = page["show_template"]
    assert [block.elem_id for block in show.outputs] == ["template-details"]  # nothing else is set
    dance = show.fn("dance", tiny_model, asked())
    # 5 s at the model's 24 fps on Wan's 4n+1 rule, and 1.1 times its guidance of 5
    assert "**Dance**" in dance and "camera static" in dance and "about 5 s, 121 frames on wan2.2-ti2v-5b" in dance
    assert "guidance 5.5" in dance and "motion intensity 1.3" in dance
    assert "跳舞" in show.fn("dance", tiny_model, asked("zh")) and show.fn("", tiny_model, asked()) == ""
    # The pick list: "none" first, then every template in the data's order, labelled in each language.
    import app
    from i2v.templates import templates

    template = next(block for block in show.inputs if block.elem_id == "template")
    assert [value for _, value in template.choices] == ["", *templates()]
    assert app.I18N.translations["zh"]["template_dance"] == "跳舞" and app.I18N.translations["en"]["template_none"]


def test_refine_shows_advice_and_only_its_one_button_applies_it(page, tiny_model, chelsea):
    assert {block.elem_id for block in page["refine"].outputs}.isdisjoint({"frames", "fps", "guidance"})
    form = dict(prompt="猫转头", image=str(chelsea), model=tiny_model, height=64, width=64, num_frames=9, fps=24,
                steps=2, guidance=5.0, camera="static", template="dance")  # fmt: skip
    shown, advice = refine_on_the_page(page, **form)
    assert "dances" in shown["refined"]  # the template's motion words, in the prompt the model gets
    assert advice["values"] == {"num_frames": 121, "guidance_scale": 5.5}  # no LLM here: the template's
    box = by_id(page["show_advice"].fn(advice))
    assert "121 frames" in box["advice"] and box["apply-advice"]["visible"]
    applied = by_id(page["apply_advice"].fn(advice, asked()))
    assert applied == {"frames": 121, "guidance": 5.5}
    _, none = refine_on_the_page(page, **{**form, "template": ""})  # nothing suggested: said, and no button
    box = by_id(page["show_advice"].fn(none))
    assert none["values"] == {} and box["advice"] and not box["apply-advice"]["visible"]
    with pytest.raises(Exception, match="Nothing to apply"):
        page["apply_advice"].fn(none, asked())
    # Another model: the advice was for the one before, and goes.
    assert next(v for v in page["on_capabilities"].fn("wan-vace-1.3b", asked()).values() if v == {}) == {}


def test_the_fps_says_how_the_model_reaches_it_and_interpolation_sets_it(page, tiny_model):
    info = lambda fps: page["fps_info"].fn(tiny_model, fps, asked())["info"]  # noqa: E731
    assert "reached by interpolation" in info(48) and "24 fps" in info(48)
    assert "dropped evenly" in info(12) and "interpolation" not in info(24)
    assert "renders any" in page["fps_info"].fn("camera", 48, asked())["info"]
    assert "插帧" in page["fps_info"].fn(tiny_model, 48, asked("zh"))["info"]
    assert [page["on_interpolate"].fn(tiny_model, factor, asked()) for factor in ("x1", "x2", "x4")] == [24, 48, 60]


def test_the_page_generates_with_style_palette_intensity_template_and_a_soundtrack(app_url, page, tiny_model, chelsea,
                                                                                  tmp_path):  # fmt: skip
    import wave

    import numpy as np

    from i2v.export import read_audio

    tone = tmp_path / "tone.wav"  # 0.2 s of 440 Hz: looped under the video's 0.375 s
    with wave.open(str(tone), "wb") as file:
        file.setnchannels(1), file.setsampwidth(2), file.setframerate(16000)
        file.writeframes((np.sin(np.arange(3200) * 2 * np.pi * 440 / 16000) * 12000).astype("<i2").tobytes())
    url, _ = app_url
    client = Client(url, verbose=False)
    named = {**generate_args(chelsea, "the cat looks up", "", tiny_model, auto=False), "style": "anime",
             "color_palette": "warm", "motion_intensity": 0, "template": "nod", "soundtrack": handle_file(str(tone))}
    _, params, *_ = client.predict(**named, api_name="/generate")
    assert (params["style"], params["color_palette"], params["template"]) == ("anime", "warm", "nod")
    assert params["motion_intensity"] == 0.6  # the page's 0 is none asked: the template's own intensity
    assert params["num_frames"] == 9  # the form's frames: the template's are advice only
    assert (params["has_audio"], params["audio"]) == (True, "soundtrack") and params["soundtrack"].endswith(".wav")
    samples, rate = read_audio(Path(params["output_path"]))
    assert abs(samples.shape[-1] / rate - 9 / 24) < 0.05 and np.abs(samples).max() > 0.1  # as long as the video
    # Load into form gives the style knobs back; the soundtrack's file, like the photo, stays the form's own.
    loaded = by_id(page["load_from_history"].fn([params], params.get("job", 0), asked()))
    assert (loaded["style"], loaded["color-palette"], loaded["template"]) == ("anime", "warm", "nod")
    assert loaded["motion-intensity"] == 0.6 and "soundtrack" not in loaded and "reference-1" not in loaded


def test_the_subject_slots_reach_the_engines_check(app_url, tiny_model, chelsea):
    url, _ = app_url
    client = Client(url, verbose=False)
    named = generate_args(chelsea, "the cat and the cup", "", tiny_model, auto=False)
    with pytest.raises(AppError, match="wan2.2-ti2v-5b takes no reference images of subjects; families that do: "
                                       "wan-vace-1.3b, wan-vace-14b"):  # fmt: skip
        client.predict(**named, reference_1=handle_file(str(chelsea)), reference_label_1="the cat",
                       api_name="/generate")  # fmt: skip
    with pytest.raises(AppError, match=r"Reference 2 has a label \(a cup\) but no photo or clip"):
        client.predict(**named, reference_label_2="a cup", api_name="/generate")
