"""`i2v batch` as a person runs it (a real process around a tiny model, on the CPU): locally through
the job store, resumed after a `kill -9` without running a line twice, refused while a server holds
the store, and through a running server's REST API with a token."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_api import ALICE, Server

from i2v.export import read_mp4
from studio.store import JobStore

ROOT = Path(__file__).resolve().parents[1]


def write_batch(folder: Path, chelsea: Path, lines: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(chelsea, folder / "cat.jpg")
    path = folder / "jobs.jsonl"
    path.write_text("\n".join(json.dumps(line, ensure_ascii=False) for line in lines) + "\n", encoding="utf-8")
    return path


def job(seed: int, **fields) -> dict:
    return {"image": "cat.jpg", "prompt": "a cat turns its head", "height": 64, "width": 64, "num_frames": 9,
            "num_inference_steps": 2, "seed": seed, **fields}  # fmt: skip


def batch(args: list[str], env: dict, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "commands.py"), "batch", *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)  # fmt: skip


def local_env(model: str, out: Path) -> dict:
    return {**os.environ, "I2V_MODEL": model, "I2V_OUTPUT_DIR": str(out), "I2V_DEVICE": "cpu", "HF_HUB_OFFLINE": "1",
            "OMP_NUM_THREADS": "1"}  # fmt: skip


def peek(out: Path, job_id: str):
    """The job as the store holds it (read beside the batch's own connection, as WAL allows)."""
    store = JobStore(out)
    try:
        return store.get(job_id)
    finally:
        store.close()


def summary(path: Path) -> dict[int, dict]:
    return {row["line"]: row for row in json.loads(path.read_text())["lines"]}


def test_a_local_batch_runs_every_line_says_what_failed_and_resumes(tiny_model, tmp_path, chelsea):
    file = write_batch(tmp_path / "b", chelsea, [job(1), job(2, height=5000), job(3, refine=True, prompt="向左平移镜头")])
    env, out = local_env(tiny_model, tmp_path / "out"), tmp_path / "out"
    run = batch([str(file)], env)
    stdout, stderr = run.communicate(timeout=300)
    assert run.returncode == 1, stderr  # one line failed
    rows = summary(file.with_name("jobs.jsonl.summary.json"))
    assert [rows[n]["status"] for n in (1, 2, 3)] == ["done", "failed", "done"], rows
    assert "height" in rows[2]["error"] and "2160" in rows[2]["error"]
    for n in (1, 3):
        frames, _ = read_mp4(Path(rows[n]["output"]))
        assert frames.shape == (9, 64, 64, 3)
    assert "[3/3] line 3: done" in stderr and json.loads(stdout)["failed"] == 1
    videos = sorted(out.glob("*.mp4"))
    again = batch([str(file)], env)
    _, stderr = again.communicate(timeout=300)
    assert "line 1: done before, skipped" in stderr and "line 3: done before, skipped" in stderr
    assert sorted(out.glob("*.mp4")) == videos  # nothing made twice
    # a line added at the top: it runs; the others, moved down a line, are still done
    file.write_text(json.dumps(job(4)) + "\n" + file.read_text(encoding="utf-8"), encoding="utf-8")
    third = batch([str(file)], env)
    _, stderr = third.communicate(timeout=300)
    rows = summary(file.with_name("jobs.jsonl.summary.json"))
    assert [rows[n]["status"] for n in (1, 2, 3, 4)] == ["done", "done", "failed", "done"], stderr
    assert "line 2: done before, skipped" in stderr and "line 4: done before, skipped" in stderr
    assert len(sorted(out.glob("*.mp4"))) == len(videos) + 1


def test_a_batch_killed_mid_line_resumes_that_job_and_makes_each_video_once(tiny_model, tmp_path, chelsea):
    slow = dict(num_inference_steps=30, height=128, width=128, num_frames=17)
    file = write_batch(tmp_path / "b", chelsea, [job(1, **slow), job(2, **slow)])
    env, out = local_env(tiny_model, tmp_path / "out"), tmp_path / "out"
    run = batch([str(file)], env)
    summary_file = file.with_name("jobs.jsonl.summary.json")
    deadline = time.monotonic() + 180
    first_job = None
    while time.monotonic() < deadline:  # until line 1's job is denoising
        first_job = summary(summary_file).get(1, {}).get("job") if summary_file.exists() else None
        if first_job and (found := peek(out, first_job)) and found.stage == "denoising":
            break
        time.sleep(0.1)
    else:
        pytest.fail("line 1's job never started denoising")
    run.send_signal(signal.SIGKILL)
    run.wait(30)
    again = batch([str(file)], env)
    _, stderr = again.communicate(timeout=400)
    assert again.returncode == 0, stderr
    rows = summary(summary_file)
    assert rows[1]["job"] == first_job  # the same job, waited for: not submitted twice
    assert [rows[n]["status"] for n in (1, 2)] == ["done", "done"]
    assert peek(out, first_job).attempts == 2  # it was running when killed, and ran again
    assert len(list(out.glob("*.mp4"))) == 2


def test_a_local_batch_is_refused_while_a_server_holds_the_store(tiny_model, tmp_path, chelsea):
    out = tmp_path / "out"
    server = Server(tiny_model, out).start()
    try:
        file = write_batch(tmp_path / "b", chelsea, [job(1)])
        run = batch([str(file)], local_env(tiny_model, out))
        _, stderr = run.communicate(timeout=120)
        assert run.returncode == 2 and "another process" in stderr and "--server" in stderr, stderr
        # ... and through that server, with a token, the videos come back and decode
        run = batch([str(file), "--server", server.url, "--token", ALICE], local_env(tiny_model, out))
        stdout, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, stderr
        row = summary(file.with_name("jobs.jsonl.summary.json"))[1]
        assert row["status"] == "done" and Path(row["output"]).parent == tmp_path / "b" / "jobs-videos"
        frames, _ = read_mp4(Path(row["output"]))
        assert frames.shape == (9, 64, 64, 3)
        run = batch([str(file), "--server", server.url, "--token", "wrong-token-123456789"], local_env(tiny_model, out))
        _, stderr = run.communicate(timeout=120)
        assert run.returncode == 2 and "401" in stderr
    finally:
        server.stop()


def test_a_batch_line_ends_on_a_photo_and_passes_keyframes_beside_the_file(tiny_models, tmp_path, chelsea, coffee):
    folder = tmp_path / "b"
    file = write_batch(folder, chelsea, [
        job(1, num_frames=17, height=32, width=32, last_image="end.png", keyframes=[{"image": "key.png", "frame": 8}]),
        job(2, num_frames=17, height=32, width=32, keyframes=[{"image": "missing.png", "frame": 8}]),
    ])  # fmt: skip
    shutil.copyfile(coffee, folder / "end.png")
    shutil.copyfile(coffee, folder / "key.png")
    out = tmp_path / "out"
    run = batch([str(file)], local_env(str(tiny_models["ltx-video-condition"]), out))
    _, stderr = run.communicate(timeout=300)
    rows = summary(file.with_name("jobs.jsonl.summary.json"))
    assert rows[1]["status"] == "done", stderr
    assert rows[2]["status"] == "failed" and "missing.png is not there" in rows[2]["error"]
    made = json.loads(Path(rows[1]["output"]).with_suffix(".json").read_text())
    assert made["keyframes"] == [{"image": "keyframe_0.png", "frame": 8}] and made["last_image"] == "last_image.png"
    assert read_mp4(Path(rows[1]["output"]))[0].shape == (17, 32, 32, 3)
