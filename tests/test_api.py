"""The REST API and the job store against a real server process (`python app.py` around a tiny
model, on the CPU): submit, poll, download and decode, cancel, two users who cannot see each other's
jobs or files, 422s for bad fields, a full queue, metrics, and a `kill -9` in the middle of a job:
after a restart every job ends done, none lost, none run twice."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from llama import free_port

from i2v.export import read_mp4

ROOT = Path(__file__).resolve().parents[1]
ALICE, BOB = "alice-token-0123456789", "bob-token-0123456789ab"


class Server:
    """`python app.py` in its own process, on a free port."""

    def __init__(self, model: str, out: Path, **env):
        self.port = free_port()
        self.out = out
        self.env = {**os.environ, "I2V_MODEL": model, "I2V_OUTPUT_DIR": str(out), "I2V_PORT": str(self.port),
                    "I2V_DEVICE": "cpu", "I2V_API_TOKENS": f"alice:{ALICE},bob:{BOB}", "I2V_QUEUE_SIZE": "3",
                    "I2V_MAX_UPLOAD_MB": "1",
                    "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1",
                    **env}  # fmt: skip
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self, timeout: float = 120) -> Server:
        log = (self.out.parent / f"server-{self.port}.log").open("ab")
        self.process = subprocess.Popen([sys.executable, str(ROOT / "app.py")], env=self.env, cwd=ROOT,
                                        stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}: {self.log()[-2000:]}")
            try:
                if httpx.get(self.url + "/api/v1/models", headers=auth(ALICE), timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError("the server did not start: " + self.log()[-2000:])

    def log(self) -> str:
        return (self.out.parent / f"server-{self.port}.log").read_text(errors="replace")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def data_url(path: Path) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(path.read_bytes()).decode()


def job_body(photo: Path, **fields) -> dict:
    return {"image": data_url(photo), "prompt": "a cat turns its head", "height": 64, "width": 64, "num_frames": 9,
            "num_inference_steps": 2, "seed": 5, **fields}  # fmt: skip


def wait_for(url: str, token: str, job_id: str, until=("done", "failed", "stopped"), timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = httpx.get(f"{url}/api/v1/jobs/{job_id}", headers=auth(token), timeout=10).json()
        if job["status"] in until:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} is still {job['status']}")


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("api") / "outputs"
    running = Server(tiny_model, out).start()
    yield running
    running.stop()


def test_submit_poll_download_and_decode(server, chelsea):
    reply = httpx.post(f"{server.url}/api/v1/jobs", json=job_body(chelsea), headers=auth(ALICE), timeout=60)
    assert reply.status_code == 202, reply.text
    job = reply.json()
    assert job["status"] == "queued" and job["position"] is not None and len(job["id"]) >= 16
    assert reply.headers["location"] == f"/api/v1/jobs/{job['id']}"
    done = wait_for(server.url, ALICE, job["id"])
    assert done["status"] == "done", done
    assert done["result"]["video"]["seed"] == 5 and done["result"]["video"]["prompt"] == "a cat turns its head"
    assert "output_path" not in str(done) and str(server.out) not in str(done)  # no server path
    assert str(Path(server.env["I2V_MODEL"]).parent) not in str(done)  # the model folder: by its name only
    models = httpx.get(f"{server.url}/api/v1/models", headers=auth(ALICE), timeout=10).json()
    assert str(Path(server.env["I2V_MODEL"]).parent) not in str(models)
    video = httpx.get(server.url + done["video_url"], headers=auth(ALICE), timeout=30)
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    path = server.out.parent / "downloaded.mp4"
    path.write_bytes(video.content)
    frames, _ = read_mp4(path)
    assert frames.shape == (9, 64, 64, 3)


def test_multipart_and_refine_first(server, chelsea):
    with chelsea.open("rb") as photo:
        reply = httpx.post(f"{server.url}/api/v1/jobs", headers=auth(BOB), timeout=60,
                           files={"image": ("chelsea.jpg", photo, "image/jpeg")},
                           data={"prompt": "向左平移镜头", "refine": "true", "height": "64", "width": "64",
                                 "num_frames": "9", "num_inference_steps": "2"})  # fmt: skip
    assert reply.status_code == 202, reply.text
    done = wait_for(server.url, BOB, reply.json()["id"])
    assert done["status"] == "done", done
    assert "pans slowly to the left" in done["result"]["prompt"]  # refined first (offline rules here)
    assert done["result"]["camera_motion"] == "pan_left"


def test_two_users_cannot_see_each_others_jobs_or_videos(server, chelsea):
    job = httpx.post(f"{server.url}/api/v1/jobs", json=job_body(chelsea), headers=auth(ALICE), timeout=60).json()
    wait_for(server.url, ALICE, job["id"])
    for path in (f"/api/v1/jobs/{job['id']}", f"/api/v1/jobs/{job['id']}/video"):
        assert httpx.get(server.url + path, headers=auth(BOB), timeout=10).status_code == 404
    assert httpx.delete(f"{server.url}/api/v1/jobs/{job['id']}", headers=auth(BOB), timeout=10).status_code == 404
    bobs = httpx.get(f"{server.url}/api/v1/jobs", headers=auth(BOB), timeout=10).json()
    assert job["id"] not in [j["id"] for j in bobs["jobs"]] and all(j["owner"] == "bob" for j in bobs["jobs"])
    alices = httpx.get(f"{server.url}/api/v1/jobs?limit=1", headers=auth(ALICE), timeout=10).json()
    assert alices["jobs"][0]["id"] == job["id"] and alices["total"] >= 1 and alices["limit"] == 1
    # gradio's file routes serve nothing of the output folder: not the videos, not the job store
    (video,) = [p for p in server.out.glob("*.mp4") if p.name == alices["jobs"][0]["result"]["video"]["file"]]
    for path in (video, server.out / ".jobs" / "jobs.sqlite3"):
        for route in (f"/gradio_api/file={path}", f"/gradio_api/file/{path}", f"/file={path}"):
            assert httpx.get(server.url + route, timeout=10).status_code in (403, 404), route


def test_a_request_without_a_valid_token_is_a_401(server):
    assert httpx.get(f"{server.url}/api/v1/jobs", timeout=10).status_code == 401
    reply = httpx.get(f"{server.url}/api/v1/jobs", headers=auth("not-a-token-at-all"), timeout=10)
    assert reply.status_code == 401 and "Bearer" in reply.json()["detail"]
    assert httpx.get(f"{server.url}/api/v1/jobs/whatever/video", timeout=10).status_code == 401


def test_bad_fields_are_422s_that_name_the_field_and_the_rule(server, chelsea):
    post = lambda body: httpx.post(f"{server.url}/api/v1/jobs", json=body, headers=auth(ALICE), timeout=30)  # noqa: E731
    reply = post(job_body(chelsea, height=5000))
    assert reply.status_code == 422 and reply.json()["detail"][0]["loc"][-1] == "height"
    assert "2160" in reply.json()["detail"][0]["msg"]
    reply = post(job_body(chelsea, colour="red"))  # unknown field
    assert reply.status_code == 422 and reply.json()["detail"][0]["loc"][-1] == "colour"
    for image in ("/etc/passwd", "https://example.com/cat.jpg", str(chelsea)):  # never read nor fetched
        reply = post({**job_body(chelsea), "image": image})
        assert reply.status_code == 422 and "data URL" in reply.json()["detail"], image
    for model in ("/etc", "../..", "wan2.1-i2v-14b-480p"):  # a server folder, or a model not here: not ours to load
        reply = post(job_body(chelsea, model=model))
        assert reply.status_code == 422 and f"model '{model}' is not one of" in reply.json()["detail"], reply.text
    reply = post(job_body(chelsea, num_frames=200))  # the model's own rule, checked before queueing
    assert reply.status_code == 422 and "at most 161" in reply.json()["detail"]
    reply = post(job_body(chelsea, loras=[{"name": "../../secret.safetensors"}]))
    assert reply.status_code == 422 and "../../secret.safetensors is not in the LoRA folder" in reply.json()["detail"]
    reply = httpx.post(f"{server.url}/api/v1/jobs", content=b"not json", headers={**auth(ALICE), "content-type":
                       "application/json"}, timeout=30)  # fmt: skip
    assert reply.status_code == 422
    for number in (b"NaN", b"Infinity", b"1e400"):  # JSON's edges: a 422, never a 500 (nor a dropped connection)
        body = json.dumps(job_body(chelsea)).replace('"height": 64', '"height": ' + number.decode()).encode()
        reply = httpx.post(f"{server.url}/api/v1/jobs", content=body, headers={**auth(ALICE), "content-type":
                           "application/json"}, timeout=30)  # fmt: skip
        assert reply.status_code == 422 and reply.json()["detail"][0]["loc"][-1] == "height", reply.text
    reply = post(job_body(chelsea, prompt="x" * 100_000))  # the value is named, not echoed
    assert reply.status_code == 422 and len(reply.text) < 2000 and "4000" in reply.text
    reply = httpx.post(f"{server.url}/api/v1/jobs", json=job_body(chelsea, height=5000), timeout=30,
                       headers={**auth(ALICE), "Accept-Language": "zh-CN"})  # fmt: skip
    assert "2160" in reply.json()["detail"][0]["msg"] and "高度" in reply.json()["detail"][0]["msg"]
    reply = httpx.get(f"{server.url}/api/v1/jobs?offset=99999999999999999999", headers=auth(ALICE), timeout=30)
    assert reply.status_code == 422 and reply.json()["detail"][0]["loc"][-1] == "offset"
    reply = httpx.get(f"{server.url}/api/v1/plan?speed=warp", headers=auth(ALICE), timeout=30)
    assert reply.status_code == 422 and reply.json()["detail"][0]["loc"][-1] == "speed"


def test_cancel_a_running_and_a_queued_job_then_delete(server, chelsea):
    slow = job_body(chelsea, num_inference_steps=200, height=256, width=256, num_frames=65)
    running = httpx.post(f"{server.url}/api/v1/jobs", json=slow, headers=auth(ALICE), timeout=60).json()
    wait_for(server.url, ALICE, running["id"], until=("running",))
    queued = httpx.post(f"{server.url}/api/v1/jobs", json=slow, headers=auth(ALICE), timeout=60).json()
    assert queued["position"] == 1
    assert httpx.delete(f"{server.url}/api/v1/jobs/{queued['id']}", headers=auth(ALICE), timeout=10).status_code == 202
    assert httpx.delete(f"{server.url}/api/v1/jobs/{running['id']}", headers=auth(ALICE), timeout=10).status_code == 202
    assert wait_for(server.url, ALICE, queued["id"])["status"] == "stopped"
    assert wait_for(server.url, ALICE, running["id"], timeout=60)["status"] == "stopped"
    assert httpx.get(f"{server.url}/api/v1/jobs/{running['id']}/video", headers=auth(ALICE), timeout=10).status_code == 409
    assert httpx.delete(f"{server.url}/api/v1/jobs/{running['id']}", headers=auth(ALICE), timeout=10).status_code == 204
    assert httpx.get(f"{server.url}/api/v1/jobs/{running['id']}", headers=auth(ALICE), timeout=10).status_code == 404


def test_a_full_queue_is_refused_and_metrics_count_what_happened(server, chelsea):
    slow = job_body(chelsea, num_inference_steps=200, height=256, width=256, num_frames=65)
    ids = [httpx.post(f"{server.url}/api/v1/jobs", json=slow, headers=auth(BOB), timeout=60).json()["id"]]
    wait_for(server.url, BOB, ids[0], until=("running",))
    for _ in range(3):  # I2V_QUEUE_SIZE=3 wait
        reply = httpx.post(f"{server.url}/api/v1/jobs", json=slow, headers=auth(BOB), timeout=60)
        assert reply.status_code == 202, reply.text
        ids.append(reply.json()["id"])
    reply = httpx.post(f"{server.url}/api/v1/jobs", json=slow, headers=auth(BOB), timeout=60)
    assert reply.status_code == 503 and "Queue is full" in reply.json()["detail"]
    assert reply.headers["retry-after"] == "30"
    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert 'i2v_queue_depth 3.0' in metrics and 'i2v_jobs{status="running"} 1.0' in metrics
    for job_id in reversed(ids):
        httpx.delete(f"{server.url}/api/v1/jobs/{job_id}", headers=auth(BOB), timeout=10)
    for job_id in ids:
        assert wait_for(server.url, BOB, job_id, timeout=60)["status"] == "stopped"
    httpx.post(f"{server.url}/api/v1/refine", json={"prompt": "猫转头"}, headers=auth(BOB), timeout=60)
    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert 'i2v_queue_depth 0.0' in metrics
    done = sum(j["status"] == "done" for who in (ALICE, BOB) for j in
               httpx.get(f"{server.url}/api/v1/jobs?limit=200", headers=auth(who), timeout=10).json()["jobs"])  # fmt: skip
    assert f'i2v_jobs{{status="done"}} {float(done)}' in metrics
    assert f'i2v_generation_seconds_count{{model="wan2.2-ti2v-5b"}} {float(done)}' in metrics
    assert 'i2v_refine_seconds_count{source="offline"}' in metrics
    assert 'i2v_failures_total{kind="bad_input"}' in metrics


def test_uploads_are_limited_as_they_stream_in(server, chelsea):
    def chunks(megabytes: int):
        yield b'{"image": "data:image/png;base64,'
        for _ in range(megabytes):
            yield b"A" * 1024**2
        yield b'", "prompt": "x"}'

    reply = httpx.post(f"{server.url}/api/v1/jobs", content=chunks(8), headers={**auth(ALICE), "content-type":
                       "application/json"}, timeout=60)  # fmt: skip
    assert reply.status_code == 413 and "1 MB" not in reply.json()["detail"] and "MB" in reply.json()["detail"]
    big = job_body(chelsea)
    big["image"] = "data:image/png;base64," + base64.b64encode(b"\0" * (1024**2 + 10)).decode()  # over 1 MB decoded
    reply = httpx.post(f"{server.url}/api/v1/jobs", json=big, headers=auth(ALICE), timeout=60)
    assert reply.status_code == 413 and "at most 1.0 MB" in reply.json()["detail"]
    with chelsea.open("rb") as photo:  # an odd file name is not a file name on the server
        reply = httpx.post(f"{server.url}/api/v1/jobs", headers=auth(ALICE), timeout=60,
                           files={"image": ("x" * 300 + ".p" + "n" * 300, photo, "application/octet-stream")},
                           data={"prompt": "a cat", "height": "64", "width": "64", "num_frames": "9",
                                 "num_inference_steps": "2"})  # fmt: skip
    assert reply.status_code == 202, reply.text
    assert wait_for(server.url, ALICE, reply.json()["id"])["status"] == "done"


def test_models_plan_and_refine(server, chelsea):
    models = httpx.get(f"{server.url}/api/v1/models", headers=auth(ALICE), timeout=10).json()
    assert "wan2.2-ti2v-5b" in str(models) and models["models"][0]["frame_step"] >= 1
    plan = httpx.get(f"{server.url}/api/v1/plan", params={"height": 64, "width": 64}, headers=auth(ALICE), timeout=30)
    assert plan.status_code == 200 and plan.json()["plan"]
    refined = httpx.post(f"{server.url}/api/v1/refine", json={"prompt": "猫转头"}, headers=auth(ALICE), timeout=60)
    assert refined.status_code == 200 and refined.json()["prompt"]
    schema = httpx.get(f"{server.url}/api/openapi.json", timeout=10).json()
    assert "/api/v1/jobs" in schema["paths"] and "/api/v1/jobs/{job_id}/video" in schema["paths"]


def test_kill_9_mid_job_then_restart_loses_nothing_and_runs_nothing_twice(tiny_model, tmp_path, chelsea):
    out = tmp_path / "outputs"
    first = Server(tiny_model, out).start()
    try:
        slow = job_body(chelsea, num_inference_steps=30, height=128, width=128, num_frames=17)
        ids = [httpx.post(f"{first.url}/api/v1/jobs", json=job_body(chelsea, seed=i, **{k: slow[k] for k in
               ("num_inference_steps", "height", "width", "num_frames")}), headers=auth(ALICE), timeout=60).json()["id"]
               for i in range(3)]  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # kill it in the middle of the first job's denoising
            job = httpx.get(f"{first.url}/api/v1/jobs/{ids[0]}", headers=auth(ALICE), timeout=10).json()
            if job["progress"]["stage"] == "denoising":
                break
            time.sleep(0.1)
        first.kill()
    finally:
        first.stop()
    second = Server(tiny_model, out, I2V_PORT=str(free_port()))
    second.port = int(second.env["I2V_PORT"])
    second.url = f"http://127.0.0.1:{second.port}"
    second.start()
    try:
        jobs = [wait_for(second.url, ALICE, job_id, timeout=300) for job_id in ids]
    finally:
        second.stop()
    assert [job["status"] for job in jobs] == ["done"] * 3, jobs
    assert jobs[0]["attempts"] == 2 and [job["attempts"] for job in jobs[1:]] == [1, 1]
    videos = sorted(out.glob("*.mp4"))
    assert len(videos) == 3  # one each: none lost, none duplicated
    assert not [p for p in out.iterdir() if p.name.endswith(".part")]  # the killed run's partial files are gone
    assert {job["result"]["video"]["seed"] for job in jobs} == {0, 1, 2}


def test_a_clean_stop_queues_the_running_job_again_without_counting_it(tiny_model, tmp_path, chelsea):
    out = tmp_path / "outputs"
    first = Server(tiny_model, out).start()
    slow = job_body(chelsea, num_inference_steps=30, height=128, width=128, num_frames=17)
    try:
        job_id = httpx.post(f"{first.url}/api/v1/jobs", json=slow, headers=auth(ALICE), timeout=60).json()["id"]
        wait_for(first.url, ALICE, job_id, until=("running",))
        started = time.monotonic()
        first.process.terminate()  # SIGTERM, as a service manager stops it
        first.process.wait(60)
        assert time.monotonic() - started < 30
    finally:
        first.stop()
    second = Server(tiny_model, out)
    second.start()
    try:
        job = wait_for(second.url, ALICE, job_id, timeout=300)
    finally:
        second.stop()
    assert job["status"] == "done" and job["attempts"] == 1, job


def test_ctrl_c_while_a_page_waits_on_its_job_stops_the_server_and_keeps_the_job(tiny_model, tmp_path, chelsea):
    # A page's Generate waits on the store; Ctrl-C must still end the process, and the job it
    # waited on stays queued for the next start.
    from gradio_client import Client
    from test_app import generate_args

    from studio.store import JobStore

    out = tmp_path / "outputs"
    first = Server(tiny_model, out).start()
    try:
        page = Client(first.url + "/", verbose=False)
        args = generate_args(chelsea, "cat", "a cat", str(Path(tiny_model)), steps=200)  # stopped long before its end
        args.update(height=256, width=256, num_frames=65)
        page.submit(*args.values(), api_name="/generate")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # until the page's job denoises
            store = JobStore(out)
            found = [job for job in store.list() if job.status == "running" and job.stage == "denoising"]
            store.close()
            if found:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the page's job never started denoising")
        started = time.monotonic()
        first.process.send_signal(signal.SIGINT)
        first.process.wait(60)
        assert time.monotonic() - started < 30
    finally:
        first.stop()
    store = JobStore(out)
    (job,) = store.list()
    store.close()
    assert job.status == "queued" and job.attempts == 0, (job.status, job.attempts)


def test_a_second_server_on_the_same_store_is_refused(server, tiny_model):
    second = Server(tiny_model, server.out)
    with pytest.raises(RuntimeError, match="another process .* is running the jobs"):
        second.start(timeout=120)


def test_with_page_users_a_video_goes_only_to_its_owner(tiny_model, tmp_path, chelsea):
    out = tmp_path / "outputs"
    server = Server(tiny_model, out, I2V_AUTH="alice:alice-password,bob:bob-password").start()
    try:
        job = httpx.post(f"{server.url}/api/v1/jobs", json=job_body(chelsea), headers=auth(ALICE), timeout=60).json()
        assert wait_for(server.url, ALICE, job["id"])["status"] == "done"
        (video,) = out.glob("*.mp4")
        photo = next((out / ".jobs" / "inputs" / job["id"]).iterdir())
        browsers = {}
        for user in ("alice", "bob"):
            browsers[user] = httpx.Client(base_url=server.url, timeout=30)
            login = browsers[user].post("/login", data={"username": user, "password": f"{user}-password"})
            assert login.status_code == 200, login.text
        # gradio serves nothing of the output folder, whoever asks and however the path is written:
        # a video goes to its owner through the API (or to the page that made it, as a cached copy)
        twice_encoded = f"{out}/x%252F..%252F..%252F../../{out.name}/{video.name}"
        for path in (video, video.with_suffix(".json"), photo, out / ".jobs" / "jobs.sqlite3", twice_encoded):
            for route in ("/gradio_api/file=", "/gradio_api/file/"):
                for browser in browsers.values():
                    assert browser.get(f"{route}{path}").status_code in (403, 404), (route, path)
        assert httpx.get(server.url + "/api/v1/jobs/" + job["id"] + "/video", headers=auth(ALICE)).status_code == 200
        # the API still wants its token
        assert httpx.get(f"{server.url}/api/v1/jobs", timeout=10).status_code == 401
    finally:
        for browser in locals().get("browsers", {}).values():
            browser.close()
        server.stop()


def test_a_long_video_by_segments_with_interpolation(server, chelsea):
    body = job_body(chelsea, segments=["a cat looks up", {"prompt": "the cat turns its head", "seed": 77}],
                    interpolate=2, fps=48)  # fmt: skip
    body.pop("prompt")
    reply = httpx.post(f"{server.url}/api/v1/jobs", json=body, headers=auth(ALICE), timeout=60)
    assert reply.status_code == 202, reply.text
    done = wait_for(server.url, ALICE, reply.json()["id"])
    assert done["status"] == "done", done
    video = done["result"]["video"]
    assert [(s["prompt"], s["seed"]) for s in video["segments"]] == [("a cat looks up", 5),
                                                                       ("the cat turns its head", 77)]  # fmt: skip
    # two segments of 9 frames (made at the tiny Wan 2.2 TI2V's own 24 fps) join into 17, interpolated x2 into 33 at
    # the 48 fps asked: the same 0.67 s
    assert (video["num_frames"], video["fps"], video["segment_frames"], video["interpolation"]) == (33, 48, 9,
                                                                                                    "optical_flow")  # fmt: skip
    path = server.out.parent / "long.mp4"
    path.write_bytes(httpx.get(server.url + done["video_url"], headers=auth(ALICE), timeout=30).content)
    frames, meta = read_mp4(path)
    assert frames.shape == (33, 64, 64, 3) and meta["fps"] == 48


def test_end_photos_and_keyframes_come_as_uploads_never_paths(server, chelsea):
    post = lambda body: httpx.post(f"{server.url}/api/v1/jobs", json=body, headers=auth(ALICE), timeout=30)  # noqa: E731
    for value in ("/etc/passwd", str(chelsea), "https://example.com/end.jpg"):
        reply = post(job_body(chelsea, last_image=value))
        assert reply.status_code == 422 and "'last_image' must be a data URL" in reply.json()["detail"], reply.text
        reply = post(job_body(chelsea, keyframes=[{"image": value, "frame": 4}]))
        assert reply.status_code == 422 and "'keyframe_0' must be a data URL" in reply.json()["detail"], reply.text
    # a real photo, to a model that cannot end on one: the model's rule, before anything is queued
    reply = post(job_body(chelsea, last_image=data_url(chelsea)))
    assert reply.status_code == 422 and "cannot end on a given frame" in reply.json()["detail"]
    with chelsea.open("rb") as photo, chelsea.open("rb") as key:
        reply = httpx.post(f"{server.url}/api/v1/jobs", headers=auth(ALICE), timeout=60,
                           files=[("image", ("a.png", photo, "image/png")), ("keyframe_4", ("k.png", key, "image/png"))],
                           data={"prompt": "a cat", "height": "64", "width": "64", "num_frames": "9"})  # fmt: skip
    assert reply.status_code == 422 and "takes no keyframes" in reply.json()["detail"], reply.text
    reply = post(job_body(chelsea, upscale=4, height=720, width=1280))
    assert reply.status_code == 422 and "upscaling goes up to 3840x2160" in reply.json()["detail"]


def literal_words(code: str, language: str) -> list[str]:
    """The fixed words of a message (its text without its parameters): what names its rule,
    whatever values it is given."""
    import string

    import tomllib

    template = tomllib.loads((ROOT / "configs" / "messages" / f"{language}.toml").read_text(encoding="utf-8"))[code]
    return [text.strip(" :：") for text, *_ in string.Formatter().parse(template) if len(text.strip(" :：")) > 1]


def test_a_prompt_beside_segments_must_be_the_first_segments_in_the_requests_language(server, chelsea):
    segments = ["a cat looks up", "the cat turns its head"]
    for lang, header in (("en", "en-US"), ("zh", "zh-CN")):
        reply = httpx.post(f"{server.url}/api/v1/jobs", json=job_body(chelsea, prompt="a dog runs", segments=segments),
                           headers={**auth(ALICE), "Accept-Language": header}, timeout=30)  # fmt: skip
        assert reply.status_code == 422, reply.text
        assert all(words in reply.json()["detail"] for words in literal_words("request.prompt_and_segments", lang)), (
            reply.text)
        reply = httpx.post(f"{server.url}/api/v1/jobs", json=job_body(chelsea, refine=True, segments=segments),
                           headers={**auth(ALICE), "Accept-Language": header}, timeout=30)  # fmt: skip
        assert reply.status_code == 422 and "'refine'" in reply.json()["detail"], reply.text
        assert "'segments'" in reply.json()["detail"]
        assert all(words in reply.json()["detail"] for words in literal_words("studio.refine_and_segments", lang))
    reply = httpx.post(f"{server.url}/api/v1/jobs", json=job_body(chelsea, prompt=segments[0], segments=segments),
                       headers=auth(ALICE), timeout=30)  # fmt: skip
    assert reply.status_code == 202, reply.text
    done = wait_for(server.url, ALICE, reply.json()["id"])
    assert [s["prompt"] for s in done["result"]["video"]["segments"]] == segments
    assert done["result"]["video"]["prompt"] == segments[0]


def test_a_keyframe_field_without_a_frame_number_is_an_unknown_field(server, chelsea):
    for name in ("keyframe_²", "keyframe_٣", "keyframe_-1", "keyframe_" + "9" * 12):
        with chelsea.open("rb") as photo, chelsea.open("rb") as key:
            reply = httpx.post(f"{server.url}/api/v1/jobs", headers=auth(ALICE), timeout=60,
                               files=[("image", ("a.png", photo, "image/png")), (name, ("k.png", key, "image/png"))],
                               data={"prompt": "a cat", "height": "64", "width": "64", "num_frames": "9"})  # fmt: skip
        assert reply.status_code == 422, (name[:20], reply.status_code, reply.text[:300])
        assert reply.json()["detail"][0]["loc"][-1] == name


def noise_png(path: Path, side: int) -> Path:
    """A PNG of random pixels: it compresses to nothing less than its pixels."""
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(side).integers(0, 256, (side, side, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="PNG", compress_level=1)
    return path


def test_a_photo_and_an_end_photo_each_within_the_limit_fit_in_one_request(tiny_models, tmp_path):
    first, last = noise_png(tmp_path / "first.png", 585), noise_png(tmp_path / "last.png", 584)
    assert all(0.9 * 1024**2 < p.stat().st_size < 1024**2 for p in (first, last))  # I2V_MAX_UPLOAD_MB=1 each
    png = lambda path: "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()  # noqa: E731
    body = {"image": png(first), "last_image": png(last), "prompt": "a cat", "height": 32, "width": 32,
            "num_frames": 9, "num_inference_steps": 2, "seed": 1}  # fmt: skip
    assert len(json.dumps(body)) > int(1024**2 * 4 / 3) + 1024**2  # past one photo's base64 and 1 MiB
    server = Server(str(tiny_models["ltx-video-condition"]), tmp_path / "outputs").start()
    try:
        reply = httpx.post(f"{server.url}/api/v1/jobs", json=body, headers=auth(ALICE), timeout=60)
        assert reply.status_code == 202, reply.text
        assert wait_for(server.url, ALICE, reply.json()["id"])["status"] == "done"
        too_big = {**body, "last_image": "data:image/png;base64," + "A" * 12 * 1024**2}  # past 7 files' room
        for header, words in (("en", "the files of one request together"), ("zh", "同一请求中的文件合计")):
            reply = httpx.post(f"{server.url}/api/v1/jobs", json=too_big, timeout=60,
                               headers={**auth(ALICE), "Accept-Language": header})  # fmt: skip
            assert reply.status_code == 413 and words in reply.json()["detail"], reply.text
    finally:
        server.stop()
