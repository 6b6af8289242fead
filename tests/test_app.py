"""The web app driven through its named API endpoints with gradio_client, around a tiny model."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from i2v.export import read_mp4


def generate_args(photo, prompt, refined, model, steps=2, seed=5, auto=True):
    return dict(
        image=handle_file(str(photo)), prompt=prompt, refined=refined, negative="", camera="static", model=model,
        height=64, width=64, num_frames=9, fps=8, steps=steps, guidance=5.0, seed=seed, auto_refine=auto,
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
    assert table["data"][-1][3] == 5  # the history row


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
    args["num_frames"] = 200  # the sliders carry the family's bounds, and the server checks them
    with pytest.raises(AppError, match="greater than maximum value 161"):
        call_generate(client, args)
    broken = tmp_path / "broken.png"
    broken.write_bytes(chelsea.read_bytes()[:120_000])  # the header is whole, the pixels are not
    args = generate_args(broken, "cat", "a cat", tiny_model)
    with pytest.raises(AppError, match="damaged or truncated"):
        call_generate(client, args)


def test_queue_is_bounded(app_url, tiny_model, chelsea):
    url, _ = app_url
    clients = [Client(url, verbose=False) for _ in range(4)]
    jobs = [c.submit(*generate_args(chelsea, "cat", "a cat", tiny_model, steps=60).values(), api_name="/generate")
            for c in clients]  # fmt: skip
    refused = []
    for job in jobs:
        try:
            job.result(timeout=1)
        except Exception as exc:  # noqa: BLE001 - the full queue's refusal, or still running
            refused.append(str(exc))
    for client in clients:
        client.predict(api_name="/stop")
    for job in jobs:
        try:
            job.result(timeout=60)
        except Exception:  # noqa: BLE001
            pass
    assert any("queue is full" in message.lower() for message in refused), refused


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


def test_model_list_shows_camera_and_present_weights(tiny_model):
    from app import model_choices
    from settings import Settings

    choices = dict((value, label) for label, value in model_choices(Settings(model=tiny_model)))
    assert list(choices)[0] == "camera" and tiny_model in choices
    assert "wan2.2-ti2v-5b" not in choices  # no weights for the hub id in this test's empty cache
    assert list(model_choices(Settings(model="auto"))) == [model_choices(Settings(model="auto"))[0]]


def test_gpu_panel_shows_the_preset_and_a_plan_that_can_be_applied():
    from app import hardware_panel
    from i2v.hardware import GPU, Hardware
    from i2v.memory import usable_gb

    card = Hardware((GPU(0, "NVIDIA GeForce RTX 4090", 24.0, 23.5),), 128.0)
    text, actions = hardware_panel(card, "wan2.1-i2v-14b-720p", 720, 1280, 81, 40, "none", False,
                                   present=["wan2.1-i2v-14b-720p", "ltx-video"])  # fmt: skip
    assert "RTX 4090" in text and "Preset for this GPU" in text and "does not fit" in text
    assert actions["preset"].family in ("wan2.1-i2v-14b-720p", "ltx-video")
    plan = actions["plan"]
    from i2v.memory import estimate

    assert estimate(plan).peak_gb <= usable_gb(23.5)
    assert "1. VAE tiling on" in text
    # The times on the panel are all for this card (a 4090), like the preset's, not an H200's.
    from i2v.memory import RunShape, presets

    asked = estimate(RunShape("wan2.1-i2v-14b-720p", 720, 1280, 81, 40))
    assert f"~{asked.seconds * presets()['planner']['speed']['4090'] / 60:.1f} min: **does not fit**" in text
    auto_text, _ = hardware_panel(card, "wan2.1-i2v-14b-480p", 480, 832, 81, 40, "auto", False)
    assert "auto: group offload" in auto_text or "auto: model offload" in auto_text
    assert "GB host RAM" in auto_text  # offloaded weights wait in host RAM: the panel says how much
    small_ram = Hardware(card.gpus, 32.0)  # Wan 2.2 A14B's 64 GB of weights cannot be offloaded here
    a14b_text, _ = hardware_panel(small_ram, "wan2.2-i2v-a14b", 480, 832, 81, 40, "auto", False)
    assert "does not fit" in a14b_text
    # The panel describes the GPU the engine runs on (it said GPU 0 with I2V_DEVICE=cuda:1).
    from i2v.hardware import GPU

    two = Hardware((GPU(0, "NVIDIA A100-SXM4-80GB", 80.0, 79.0), card.gpus[0].__class__(1, "NVIDIA GeForce RTX 4090",
                                                                                         24.0, 23.5)), 128.0)  # fmt: skip
    on_second, _ = hardware_panel(two, "wan2.1-i2v-14b-720p", 720, 1280, 81, 40, "none", False, device="cuda:1")
    assert "GPU 1 (used): NVIDIA GeForce RTX 4090" in on_second and "Usable for a run: 21.6 GB" in on_second
    cpu_text, cpu_actions = hardware_panel(Hardware((), 24.0), "camera")
    assert "CPU only" in cpu_text and cpu_actions == {}
