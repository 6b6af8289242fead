"""The job store on a real SQLite file: order and positions, a full queue, a job interrupted twice
stops with a clear error instead of looping, one holder per store (another process is refused),
deleting and retention remove the files with the records."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from studio.store import JobStore, StoreError


@pytest.fixture
def store(tmp_path):
    made = JobStore(tmp_path / "out", queue_size=3)
    yield made
    made.close()


def test_jobs_run_in_order_with_positions_and_a_bounded_queue(store, chelsea):
    jobs = [store.submit("alice", {"model": "camera", "n": i}, chelsea, ".jpg") for i in range(3)]
    assert [store.position(job) for job in jobs] == [0, 1, 2]
    assert jobs[0].photo.read_bytes() == chelsea.read_bytes() and jobs[0].photo.parent.name == jobs[0].id
    with pytest.raises(StoreError, match="Queue is full: 3 videos"):
        store.submit("alice", {}, chelsea, ".jpg")
    first = store.claim()
    assert first.id == jobs[0].id and first.status == "running" and first.attempts == 1
    assert store.position(store.get(jobs[1].id)) == 1  # the running job is still ahead
    assert store.get(jobs[0].id, owner="bob") is None  # another owner's job is not there for bob
    assert [job.id for job in store.list("alice")] == [job.id for job in reversed(jobs)]


def test_a_job_interrupted_twice_fails_with_a_clear_error(tmp_path, chelsea):
    store = JobStore(tmp_path / "out")
    store.submit("alice", {}, chelsea)
    for attempt in (1, 2):  # the process dies while running it, twice
        assert store.claim().attempts == attempt
        store.close()
        store = JobStore(tmp_path / "out")
        (touched,) = store.recover()
        if attempt == 1:  # shown as interrupted, waiting to run again in its old place
            assert touched.status == "interrupted" and store.position(touched) == 0
    assert touched.status == "failed" and touched.error_kind == "interrupted"
    assert "stopped while running this job 2 times" in touched.error["text"]
    assert store.claim() is None  # not looping
    store.close()


def test_one_process_holds_a_store(tmp_path):
    store = JobStore(tmp_path / "out")
    store.hold()
    other = subprocess.run([sys.executable, "-c", "import sys; from studio.store import JobStore\n"
                            "try:\n JobStore(sys.argv[1]).hold()\nexcept Exception as e:\n print(e); sys.exit(3)",
                            str(tmp_path / "out")], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert other.returncode == 3 and "another process" in other.stdout
    store.close()  # let go: the next process may hold it
    again = JobStore(tmp_path / "out")
    again.hold()
    again.close()


def test_delete_and_retention_remove_files_with_their_records(store, chelsea, tmp_path):
    videos = []
    for i in range(3):
        job = store.submit("alice", {}, chelsea)
        store.claim()
        video = tmp_path / "out" / f"v{i}.mp4"
        video.write_bytes(b"x" * 1024 * (i + 1))
        video.with_suffix(".json").write_text("{}")
        store.finish(job.id, "done", result={}, video=str(video))
        videos.append((job, video))
    old, _ = videos[0]
    store._db.execute("UPDATE jobs SET finished=? WHERE id=?", (time.time() - 3 * 86400, old.id))
    store._db.execute("UPDATE jobs SET finished=? WHERE id=?", (time.time() - 3600, videos[1][0].id))
    assert store.remove_old(keep_days=2, keep_gb=None) == [old.id]
    assert not videos[0][1].exists() and not videos[0][1].with_suffix(".json").exists()
    assert not (store.root / "inputs" / old.id).exists()
    assert store.remove_old(keep_days=None, keep_gb=3.5 / 1024**2) == [videos[1][0].id]  # 2 + 3 KB > 3.5 KB
    assert videos[2][1].exists() and store.count() == 1
    assert store.remove_old(keep_days=None, keep_gb=0.5 / 1024**2) == []  # the newest just ended: it stays
