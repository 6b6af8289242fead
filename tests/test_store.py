"""The job store on a real SQLite file: order and positions, a full queue, a job interrupted twice
stops with a clear error instead of looping, one holder per store (another process is refused),
deleting and retention remove the files with the records, and reference clips (MP4, WebM, MOV) keep
a clip's suffix however they come."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from studio.store import JobStore, StoreError, file_suffix, media_type


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


def test_webm_and_mov_reference_clips_keep_a_clips_suffix(store, chelsea, tmp_path):
    import imageio_ffmpeg

    made = {}
    for suffix, codec in ((".webm", ["-c:v", "libvpx-vp9", "-f", "webm"]), (".mov", ["-c:v", "libx264", "-f", "mov"])):
        made[suffix] = tmp_path / f"clip{suffix}.bin"  # a name that tells nothing: its first bytes must
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
                        "color=c=red:s=16x16:d=0.2:r=5", *codec, str(made[suffix])], check=True, timeout=60)  # fmt: skip
    webm, mov = made[".webm"].read_bytes(), made[".mov"].read_bytes()
    assert webm[:4] == b"\x1a\x45\xdf\xa3" and mov[4:10] == b"ftypqt"  # the headers ffmpeg really writes
    for suffix, data in ((".webm", webm), (".mov", mov)):
        assert file_suffix("reference_1", head=data[:16]) == suffix  # by its first bytes
        assert file_suffix("reference_1", ".bin", media_type(suffix)) == suffix  # by its media type
        assert file_suffix("reference_1", suffix.upper()) == suffix  # by its own suffix
        assert file_suffix("reference_1", suffix, "image/png") == ".png"  # a photo's media type still wins
    assert (media_type(".webm"), media_type(".mov")) == ("video/webm", "video/quicktime")
    form = {"model": "camera", "references": [{"source": "(a file)", "label": label} for label in ("a", "b")]}
    job = store.submit("alice", form, chelsea, ".png", others={"reference_1": (webm, ".bin"),
                                                               "reference_2": (made[".mov"], "")})  # fmt: skip
    kept = [Path(reference["source"]).name for reference in job.form["references"]]
    assert kept == ["reference_1.webm", "reference_2.mov"]
