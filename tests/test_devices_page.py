"""The pool's devices on the page and in the REST API (issue 16), against a real server process over
two CPU slots (`python app.py` with I2V_DEVICES=cpu,cpu, around a tiny model): GET /api/v1/devices
lists both slots and follows a job on one of them, `gpus` in a job's body reaches the request (a job
asking more GPUs than the pool has is refused in words), the panel's lines name both slots in
English and Chinese, and in Debian's chromium the page's panel shows both slots, follows them after
a job, and offers "GPUs for this video"."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest
from test_api import ALICE, Server, auth, job_body, wait_for

from messages import note, render
from studio.panel import slot_lines


@pytest.fixture(scope="module")
def two_slots(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("devices") / "outputs"
    running = Server(tiny_model, out, I2V_DEVICES="cpu,cpu").start()
    yield running
    running.stop()


def devices(server: Server) -> list[dict]:
    reply = httpx.get(f"{server.url}/api/v1/devices", headers=auth(ALICE), timeout=30)
    assert reply.status_code == 200, reply.text
    return reply.json()["devices"]


def submit(server: Server, photo: Path) -> dict:
    reply = httpx.post(f"{server.url}/api/v1/jobs", json=job_body(photo), headers=auth(ALICE), timeout=60)
    assert reply.status_code == 202, reply.text
    return reply.json()


def test_the_page_shows_every_slot_follows_them_and_offers_gpus(two_slots, chelsea):
    """First in this file: the slots hold no model yet, so the panel's change after a job is the
    page's timer looking at the pool again."""
    from e2e.test_browser import CHROMIUM, FLAGS  # skips where Debian's chromium is not installed
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(locale="en-US", viewport={"width": 1400, "height": 1300})
        page.goto(two_slots.url)
        panel = page.locator("#gpu")
        page.wait_for_function("(document.querySelector('#gpu')?.innerText || '').includes('Device 1')", timeout=30_000)
        text = panel.inner_text()
        assert "Device 0 · CPU (cpu): idle" in text and "Device 1 · CPU (cpu): idle" in text, text
        assert text.index("No CUDA GPU") < text.index("Device 0") < text.index("Device 1")  # under the summary
        assert "loaded" not in text, text

        page.get_by_text("Advanced settings").click()
        gpus = page.locator("#gpus")
        gpus.wait_for(state="visible")
        assert "GPUs for this video" in gpus.inner_text()
        assert page.locator("#gpus input[type=range]").get_attribute("max") == "2"
        assert page.locator("#gpus input[type=range]").is_enabled()  # a Wan model: it splits (the camera's is off)

        job = submit(two_slots, chelsea)
        assert wait_for(two_slots.url, ALICE, job["id"])["status"] == "done"
        page.wait_for_function("(document.querySelector('#gpu')?.innerText || '').includes('loaded')", timeout=15_000)
        assert "idle, wan2.2-ti2v-5b loaded" in panel.inner_text()

        chinese = browser.new_page(locale="zh-CN", viewport={"width": 1400, "height": 1300})
        chinese.goto(two_slots.url)
        chinese.wait_for_function("(document.querySelector('#gpu')?.innerText || '').includes('设备 1')",
                                  timeout=30_000)  # fmt: skip
        assert "设备 0 · CPU（cpu）" in chinese.locator("#gpu").inner_text()
        browser.close()


def test_devices_lists_both_slots_and_the_job_one_runs(two_slots, chelsea):
    rows = devices(two_slots)
    assert [(row["index"], row["device"], row["state"], row["job"]) for row in rows] == [
        (0, "cpu", "idle", None), (1, "cpu", "idle", None)]  # fmt: skip
    assert httpx.get(f"{two_slots.url}/api/v1/devices", timeout=30).status_code == 401  # the other routes' auth

    job = submit(two_slots, chelsea)
    caught, deadline = None, time.monotonic() + 120
    while caught is None and time.monotonic() < deadline:
        rows = devices(two_slots)
        caught = next((row for row in rows if row["job"] == job["id"]), None)
        if caught is None:
            assert httpx.get(f"{two_slots.url}/api/v1/jobs/{job['id']}", headers=auth(ALICE),
                             timeout=30).json()["status"] in ("queued", "running"), "the job ended unseen by /devices"  # fmt: skip
            time.sleep(0.05)
    assert caught is not None and caught["state"] == "running", rows
    assert caught["model"] == Path(two_slots.env["I2V_MODEL"]).name  # a model folder by its name only
    assert [row["state"] for row in rows if row is not caught] == ["idle"]  # one job, one slot
    assert str(Path(two_slots.env["I2V_MODEL"]).parent) not in str(rows)

    # the panel's words for the same rows: a line per slot, the running job's in both languages
    for language, slot, running in (("en", "Device {}", "running job"), ("zh", "设备 {}", "正在运行任务")):
        lines = [render(line, language) for line in slot_lines(rows)]
        assert [line.startswith(slot.format(index)) for index, line in enumerate(lines)] == [True, True], lines
        busy = lines[caught["index"]]
        assert running in busy and job["id"][:8] in busy and caught["model"] in busy, busy

    assert wait_for(two_slots.url, ALICE, job["id"])["status"] == "done"
    after = devices(two_slots)
    assert [row["state"] for row in after] == ["idle", "idle"]
    assert after[caught["index"]]["loaded"] == "wan2.2-ti2v-5b"  # it keeps its model for the next job


def test_gpus_in_a_job_reaches_the_request(two_slots, chelsea):
    """More GPUs than the pool has: refused before it is queued, naming the count, from JSON, from a
    multipart form and from the page's form (its "GPUs for this video", through gradio's API) alike (a
    `gpus` dropped on its way would queue the job); past the knob's bound: the field's own 422."""
    from gradio_client import Client
    from gradio_client.exceptions import AppError
    from test_app import generate_args

    refused = {language: render(note("pool.too_many_gpus", gpus=3, have=2), language) for language in ("en", "zh")}
    before = httpx.get(f"{two_slots.url}/api/v1/jobs", headers=auth(ALICE), timeout=30).json()["total"]
    reply = httpx.post(f"{two_slots.url}/api/v1/jobs", json=job_body(chelsea, gpus=3), headers=auth(ALICE),
                       timeout=60)  # fmt: skip
    assert reply.status_code == 422 and reply.json()["detail"] == refused["en"], reply.text
    fields = {key: str(value) for key, value in job_body(chelsea, gpus=3).items() if key != "image"}
    reply = httpx.post(f"{two_slots.url}/api/v1/jobs", data=fields, files={"image": ("cat.png", chelsea.read_bytes())},
                       headers={**auth(ALICE), "Accept-Language": "zh-CN"}, timeout=60)  # fmt: skip
    assert reply.status_code == 422 and reply.json()["detail"] == refused["zh"], reply.text
    reply = httpx.post(f"{two_slots.url}/api/v1/jobs", json=job_body(chelsea, gpus=9), headers=auth(ALICE), timeout=60)
    assert reply.status_code == 422 and reply.json()["detail"][0]["loc"][-1] == "gpus", reply.text
    assert httpx.get(f"{two_slots.url}/api/v1/jobs", headers=auth(ALICE), timeout=30).json()["total"] == before
    client = Client(two_slots.url, verbose=False)
    with pytest.raises(AppError, match=re.escape(refused["en"])):
        client.predict(**generate_args(chelsea, "a cat", "a cat", two_slots.env["I2V_MODEL"]), gpus=3,
                       api_name="/generate")  # fmt: skip


def test_the_panel_says_what_each_slot_does():
    """Each state a slot of `Pool.describe()` can be in, in words: a group's slots name the job and
    each other, a job at a step says k/n, a sized CPU slot its size, a card its free memory."""
    base = {"name": "NVIDIA H100 80GB HBM3", "total_gb": 79.1, "free_gb": 70.2, "state": "idle", "job": None,
            "model": None, "stage": None, "step": None, "total": None, "group": None, "loaded": None}  # fmt: skip
    rows = [
        {**base, "index": 0, "device": "cuda:0", "state": "running", "job": "AbCdEfGhIjKl0123", "model": "ltx-video",
         "stage": "denoising", "step": 3, "total": 20},
        {**base, "index": 1, "device": "cuda:1", "state": "group", "job": "ZyXwVuTsRq987654",
         "model": "wan2.1-i2v-14b-480p", "stage": "loading", "group": [1, 2]},
        {**base, "index": 2, "device": "cuda:2", "state": "group", "job": "ZyXwVuTsRq987654",
         "model": "wan2.1-i2v-14b-480p", "stage": "loading", "group": [1, 2]},
        {**base, "index": 3, "device": "cuda:3", "loaded": "wan2.1-i2v-14b-480p"},
        {**base, "index": 4, "device": "cpu", "name": "cpu", "total_gb": 24.0, "free_gb": None},
    ]  # fmt: skip
    english = [render(line, "en") for line in slot_lines(rows)]
    assert english == [
        "Device 0 · NVIDIA H100 80GB HBM3 (`cuda:0`), 70.2 of 79.1 GB free: running job AbCdEfGh (`ltx-video`) · "
        "denoising: step 3/20",
        "Device 1 · NVIDIA H100 80GB HBM3 (`cuda:1`), 70.2 of 79.1 GB free: one of 2 devices (1, 2) running job "
        "ZyXwVuTs (`wan2.1-i2v-14b-480p`) · loading",
        "Device 2 · NVIDIA H100 80GB HBM3 (`cuda:2`), 70.2 of 79.1 GB free: one of 2 devices (1, 2) running job "
        "ZyXwVuTs (`wan2.1-i2v-14b-480p`) · loading",
        "Device 3 · NVIDIA H100 80GB HBM3 (`cuda:3`), 70.2 of 79.1 GB free: idle, `wan2.1-i2v-14b-480p` loaded",
        "Device 4 · CPU (`cpu`), 24 GB for jobs: idle",
    ]  # fmt: skip
    chinese = [render(line, "zh") for line in slot_lines(rows)]
    assert chinese[0].endswith("正在运行任务 AbCdEfGh（`ltx-video`）· 去噪：第 3/20 步"), chinese
    assert "2 个设备一组（1, 2）" in chinese[1] and "wan2.1-i2v-14b-480p" in chinese[3] and "任务可用 24 GB" in chinese[4]
