"""The job store: every video job of the studio in one SQLite file (WAL) in the output folder, so a
restart, a closed tab or a second client loses nothing. The page, the REST API and `i2v batch` all
submit here, and the pool's workers (pool.py, one per GPU) take the jobs in order.

A job holds its form (the knobs by name; its files, the photo and any end photo, keyframes,
reference photos or clips and soundtrack, copied into the store when it is submitted, so nothing
depends on a browser's or gradio's temporary files), who asked, its status, its progress, timings,
result and error. Statuses: queued, running, done, failed, stopped, interrupted (a job
that was running when the process died: it is queued again once, then fails with a clear error).

Only one process may run jobs from a store on one box: `hold()` takes a lock file that the operating
system lets go of when the process dies, even by `kill -9`. Several boxes share one store instead
(studio/cluster.py): each running job carries its worker's heartbeat, and a job whose worker went
silent is queued again by another (`reclaim`). This module knows nothing about the engine, gradio
or HTTP.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from messages import MessageError, note

STATUSES = ("queued", "running", "done", "failed", "stopped", "interrupted")
WAITING = ("queued", "interrupted")  # an interrupted job waits to run again, in its old place
ENDED = ("done", "failed", "stopped")
RETENTION_GRACE_S = 600  # retention never removes a job that ended less than this long ago
MAX_ATTEMPTS = 2  # a job whose process died this many times while running it fails instead of looping
MEDIA_TYPES = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "image/bmp": ".bmp",
               "image/gif": ".gif"}  # a photo's media type -> the suffix its file takes here  # fmt: skip
# A reference may be a short clip, a soundtrack is sound: their media types and suffixes, as for photos.
CLIP_TYPES = {"video/mp4": ".mp4", "video/webm": ".webm", "video/quicktime": ".mov"}
SOUND_TYPES = {"audio/wav": ".wav", "audio/x-wav": ".wav", "audio/wave": ".wav", "audio/vnd.wave": ".wav",
               "audio/mpeg": ".mp3", "audio/mp4": ".m4a", "audio/x-m4a": ".m4a", "audio/aac": ".aac",
               "audio/ogg": ".ogg", "audio/opus": ".opus", "audio/flac": ".flac", "audio/x-flac": ".flac"}  # fmt: skip


def photo_suffix(suffix: str | None = None, media_type: str | None = None) -> str:
    """The suffix a photo's file takes in the store: from its media type, else its own suffix when
    it is a photo's, else ".png" (the photo is read by its content, never trusted by its name)."""
    if media_type in MEDIA_TYPES:
        return MEDIA_TYPES[media_type]
    suffix = (suffix or "").lower()
    return ".jpg" if suffix == ".jpeg" else suffix if suffix in MEDIA_TYPES.values() else ".png"


def file_suffix(name: str, suffix: str | None = None, media_type: str | None = None, head: bytes = b"") -> str:
    """The suffix the file `name` of a job (as `other_files` names it, or "image") takes in the store.
    A reference is a clip (".mp4", ".webm" or ".mov", as CLIP_TYPES says) when its media type, its
    first bytes or its own suffix say so, else a photo; a soundtrack keeps a sound's suffix (".wav"
    when nothing tells). The engine reads each by its content; the suffix tells a clip from a photo
    (the refiner picks its reader by it), and keeps the names people see right."""
    suffix = (suffix or "").lower()
    if name == "soundtrack":
        if media_type in SOUND_TYPES:
            return SOUND_TYPES[media_type]
        sniffed = _sniff(head)
        if sniffed in set(SOUND_TYPES.values()):
            return sniffed
        return suffix if suffix in set(SOUND_TYPES.values()) else ".m4a" if sniffed in (".mp4", ".mov") else ".wav"
    if name.startswith("reference_"):
        clips, sniffed = set(CLIP_TYPES.values()), _sniff(head)
        if media_type in CLIP_TYPES:
            return CLIP_TYPES[media_type]
        if sniffed in clips:
            return sniffed
        if suffix in clips and media_type not in MEDIA_TYPES:
            return suffix
    return photo_suffix(suffix, media_type)


def _sniff(head: bytes) -> str | None:
    """What a file's first bytes say it is: an MP4 (or M4A, or QuickTime MOV) box, a WebM (EBML)
    header, a WAV, an MP3, Ogg or FLAC; else None."""
    if head[4:8] == b"ftyp":
        return {b"M4A": ".m4a", b"qt ": ".mov"}.get(head[8:11], ".mp4")
    if head[:4] == b"\x1a\x45\xdf\xa3":  # EBML: WebM (or Matroska, which ffmpeg reads the same way)
        return ".webm"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return ".wav"
    if head[:3] == b"ID3" or head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return ".mp3"
    return {b"OggS": ".ogg", b"fLaC": ".flac"}.get(head[:4])


def head_of(data: Path | bytes, size: int = 16) -> bytes:
    """A file's (or uploaded bytes') first `size` bytes, for `file_suffix`; none when it cannot be read."""
    if isinstance(data, bytes):
        return data[:size]
    try:
        with Path(data).open("rb") as handle:
            return handle.read(size)
    except OSError:
        return b""


def media_type(suffix: str) -> str:
    """The media type a file of the store is sent with (its data URL): a photo's, a clip's or a sound's."""
    suffix = suffix.lower()
    for table in (CLIP_TYPES, SOUND_TYPES):
        found = [kind for kind, known in table.items() if known == suffix]
        if found:
            return found[0]
    return {value: key for key, value in MEDIA_TYPES.items()}[photo_suffix(suffix)]


def other_files(form: dict) -> dict[str, str]:
    """The files of a form besides the first photo, by name: "last_image", "keyframe_N" for the N-th
    keyframe (from 0), "reference_N" for the N-th reference (from 1, as the page's slots and the
    API's multipart fields count them) and "soundtrack"; their values are the paths the form holds."""
    found = {"last_image": form["last_image"]} if form.get("last_image") else {}
    for index, keyframe in enumerate(form.get("keyframes") or []):
        if keyframe.get("image"):
            found[f"keyframe_{index}"] = keyframe["image"]
    for index, reference in enumerate(form.get("references") or [], start=1):
        if reference.get("source"):
            found[f"reference_{index}"] = reference["source"]
    if form.get("soundtrack"):
        found["soundtrack"] = form["soundtrack"]
    return found


def with_file(form: dict, name: str, path: str) -> dict:
    """The form with its file `name` (as `other_files` names it) at `path`."""
    if name in ("last_image", "soundtrack"):
        return {**form, name: path}
    if name.startswith("reference_"):
        index = int(name.removeprefix("reference_")) - 1
        references = [dict(reference) for reference in form.get("references") or []]
        references[index]["source"] = path
        return {**form, "references": references}
    index = int(name.removeprefix("keyframe_"))
    keyframes = [dict(keyframe) for keyframe in form.get("keyframes") or []]
    keyframes[index]["image"] = path
    return {**form, "keyframes": keyframes}


def _copy_in(photo: Path | bytes, target: Path) -> Path:
    """A file (a photo, a clip, a soundtrack) written to `target` whole, or not at all."""
    partial = target.with_name(f".{target.name}.part")
    if isinstance(photo, bytes):
        partial.write_bytes(photo)
    else:
        shutil.copyfile(photo, partial)
    os.replace(partial, target)
    return target


_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    owner TEXT NOT NULL,
    session TEXT,
    status TEXT NOT NULL,
    form TEXT NOT NULL,
    language TEXT NOT NULL DEFAULT 'en',
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    stage TEXT,
    step INTEGER,
    total INTEGER,
    eta REAL,
    result TEXT,
    error TEXT,
    error_kind TEXT,
    video TEXT,
    seconds REAL,
    peak_gb REAL,
    worker TEXT,
    devices TEXT,
    beat REAL,
    stop_asked REAL
);
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs(owner, seq);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, seq);
"""
# Columns added since the first stores: an older store gets them when it is opened.
_ADDED = {"worker": "TEXT", "devices": "TEXT", "beat": "REAL", "stop_asked": "REAL"}


class StoreError(MessageError):
    """A job the store refuses: the queue is full, the store is held by another process, ..."""


@dataclass
class Job:
    seq: int
    id: str
    owner: str
    session: str | None
    status: str
    form: dict
    language: str
    created: float
    started: float | None
    finished: float | None
    attempts: int
    stage: str | None
    step: int | None
    total: int | None
    eta: float | None
    result: dict | None
    error: dict | None  # {"code": message id, "text": the words, in the job's language}
    error_kind: str | None
    video: str | None
    seconds: float | None
    peak_gb: float | None
    worker: str | None = None  # who runs it, or ran it last: "host:pid:slot"
    devices: list[str] | None = None  # the devices it runs on (several for a video across GPUs)
    beat: float | None = None  # its worker's last heartbeat while it runs
    stop_asked: float | None = None  # when a person asked to stop it while it ran (its pool may be another box's)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        data = dict(row)
        data["form"] = json.loads(data["form"])
        data["result"] = json.loads(data["result"]) if data["result"] else None
        data["error"] = json.loads(data["error"]) if data["error"] else None
        data["devices"] = json.loads(data["devices"]) if data.get("devices") else None
        return cls(**data)

    @property
    def gpus(self) -> int:
        """How many devices the job asks for (its form's `gpus`, 1 without one)."""
        try:
            return max(1, int(self.form.get("gpus") or 1))
        except (TypeError, ValueError):
            return 1

    @property
    def photo(self) -> Path | None:
        return Path(self.form["image"]) if self.form.get("image") else None


class JobStore:
    def __init__(self, output_dir: Path, queue_size: int = 8, *, db: Path | None = None):
        """The store of `output_dir` (its files under `<output_dir>/.jobs`); `db`: its SQLite file
        when not `<output_dir>/.jobs/jobs.sqlite3` (several boxes keep it on one node's local disk:
        SQLite's WAL needs one machine's shared memory, which a network filesystem does not give)."""
        self.root = Path(output_dir) / ".jobs"
        self.root.mkdir(parents=True, exist_ok=True)
        self.queue_size = queue_size
        self._lock = threading.RLock()
        db = Path(db) if db else self.root / "jobs.sqlite3"
        db.parent.mkdir(parents=True, exist_ok=True)
        self._path = db
        self._db = sqlite3.connect(db, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.executescript(_SCHEMA)
        have = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        for column, kind in _ADDED.items():
            if column not in have:
                try:
                    self._db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {kind}")
                except sqlite3.OperationalError as exc:  # another process opening the old store added it first
                    if "duplicate column" not in str(exc):
                        raise
        self._held = None
        self._changed = threading.Condition()

    # ------------------------------------------------------------------ one worker per store
    def hold(self) -> None:
        """Become the one process that runs this store's jobs, or refuse: another process (a server,
        or `i2v batch`) holds it. The lock goes with the process, however it ends."""
        import fcntl

        handle = (self._path.parent / "worker.lock").open("a+")  # beside the database: one server per database
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise StoreError("store.held", folder=str(self.root.parent)) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._held = handle

    def recover(self) -> list[Job]:
        """After a restart: each job that was running when its process died is "interrupted": it waits
        to run again in its old place (its attempts counted), or fails once it died that way
        MAX_ATTEMPTS times. Only the holder calls
        this. Returns the jobs it touched."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs WHERE status IN ('running', 'interrupted')").fetchall()
            return [self._interrupt(Job.from_row(row)) for row in rows]

    def _interrupt(self, job: Job) -> Job:
        """A job whose worker died under it: interrupted (it waits to run again in its old place), or
        failed once that happened MAX_ATTEMPTS times."""
        if job.stop_asked:  # a person stopped it while its worker died: it stays stopped, it does not run again
            self._db.execute("UPDATE jobs SET status='stopped', finished=?, stage=NULL, step=NULL, total=NULL, eta=NULL "
                             "WHERE id=?", (time.time(), job.id))  # fmt: skip
        elif job.attempts >= MAX_ATTEMPTS:
            self._db.execute(
                "UPDATE jobs SET status='failed', finished=?, error_kind='interrupted', error=?, stage=NULL, step=NULL, "
                "total=NULL, eta=NULL WHERE id=?",
                (time.time(), json.dumps({"code": "store.interrupted_twice", "text": str(
                    note("store.interrupted_twice", attempts=job.attempts))}), job.id))  # fmt: skip
        else:
            self._db.execute("UPDATE jobs SET status='interrupted', stage=NULL, step=NULL, total=NULL, eta=NULL "
                             "WHERE id=?", (job.id,))  # fmt: skip
        self._notify()
        return self.get(job.id)

    def reclaim(self, lease_s: float) -> list[Job]:
        """A store several workers share (several boxes): each running job whose worker's heartbeat
        is older than `lease_s` seconds lost its worker (a killed process, a dead node), and is
        interrupted like a job a restart finds running. Returns the jobs it touched."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs WHERE status='running' AND COALESCE(beat, started, 0) < ?",
                                    (time.time() - lease_s,)).fetchall()  # fmt: skip
            return [self._interrupt(Job.from_row(row)) for row in rows]

    def lost(self, job_id: str, worker: str | None = None) -> Job | None:
        """A running job whose worker's process died (a rank of a video across GPUs, killed):
        interrupted, or failed after MAX_ATTEMPTS, as `recover` does after a restart."""
        mine, args = self._mine(worker)
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id=? AND status='running'" + mine, (job_id, *args)).fetchone()
            return self._interrupt(Job.from_row(row)) if row else self.get(job_id)

    # ------------------------------------------------------------------ submitting
    def submit(self, owner: str, form: dict, photo: Path | bytes, suffix: str = ".png", *, session: str | None = None,
               language: str = "en", others: dict[str, tuple[Path | bytes, str]] | None = None) -> Job:  # fmt: skip
        """Queue a job: its files are copied into the store first (`others`: the end photo, keyframes,
        references and the soundtrack, by `other_files`' names, with their suffixes). Refused when the
        queue is full."""
        suffix = photo_suffix(suffix)
        job_id = secrets.token_urlsafe(12)  # not guessable
        folder = self.root / "inputs" / job_id
        with self._lock:
            waiting = self._db.execute("SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'interrupted')").fetchone()[0]
            if waiting >= self.queue_size:
                raise StoreError("studio.queue_full", limit=self.queue_size)
            folder.mkdir(parents=True)
            form = {**form, "image": str(_copy_in(photo, folder / f"photo{suffix}"))}
            for name, (other, other_suffix) in (others or {}).items():
                kept = folder / f"{name}{file_suffix(name, other_suffix, head=head_of(other))}"
                form = with_file(form, name, str(_copy_in(other, kept)))
            self._db.execute(
                "INSERT INTO jobs (id, owner, session, status, form, language, created) VALUES (?, ?, ?, 'queued', ?, ?, ?)",
                (job_id, owner, session, json.dumps(form), language, time.time()))  # fmt: skip
        self._notify()
        return self.get(job_id)

    # ------------------------------------------------------------------ reading
    def get(self, job_id: str, owner: str | None = None) -> Job | None:
        """The job, or None when there is none, or it is another owner's (`owner` None: anyone's)."""
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        if row is None or (owner is not None and row["owner"] != owner):
            return None
        return Job.from_row(row)

    def list(self, owner: str | None = None, limit: int = 50, offset: int = 0, status: str | None = None,
             session: str | None = None) -> list[Job]:  # fmt: skip
        """Jobs newest first: one owner's, or everyone's (`owner` None); of one status or browser tab."""
        where, args = [], []
        if session is not None:
            where.append("session=?")
            args.append(session)
        if owner is not None:
            where.append("owner=?")
            args.append(owner)
        if status is not None:
            where.append("status=?")
            args.append(status)
        sql = "SELECT * FROM jobs" + (" WHERE " + " AND ".join(where) if where else "")
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY seq DESC LIMIT ? OFFSET ?", (*args, limit, offset)).fetchall()
        return [Job.from_row(row) for row in rows]

    def owner_of_file(self, path: Path) -> str | None:
        """Whose job a file of the output folder belongs to (a video, its JSON, a job's photo), or
        None when it is no job's."""
        path = Path(path)
        if self.root / "inputs" in path.parents:
            job = self.get(path.relative_to(self.root / "inputs").parts[0])
            return job.owner if job else None
        with self._lock:
            row = self._db.execute("SELECT owner FROM jobs WHERE video=?", (str(path.with_suffix(".mp4")),)).fetchone()
        return row["owner"] if row else None

    def count(self, owner: str | None = None) -> int:
        with self._lock:
            if owner is None:
                return self._db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
            return self._db.execute("SELECT COUNT(*) FROM jobs WHERE owner=?", (owner,)).fetchone()[0]

    def position(self, job: Job, workers: int = 1) -> int | None:
        """How many jobs must start or end before this one starts (0: it starts next, once a worker
        is free), with `workers` running jobs side by side; None once it is not queued."""
        if job.status not in WAITING:
            return None
        with self._lock:
            waiting = self._db.execute("SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'interrupted') AND seq < ?",
                                       (job.seq,)).fetchone()[0]  # fmt: skip
            running = self._db.execute("SELECT COUNT(*) FROM jobs WHERE status='running'").fetchone()[0]
        return waiting + max(0, running - max(1, workers) + 1)

    def counts(self) -> dict[str, int]:
        """Jobs by status."""
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        found = dict.fromkeys(STATUSES, 0)
        found.update({status: n for status, n in rows})
        return found

    # ------------------------------------------------------------------ the worker's side
    def waiting(self) -> list[Job]:
        """The jobs waiting to run, in queue order."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs WHERE status IN ('queued', 'interrupted') ORDER BY seq").fetchall()
        return [Job.from_row(row) for row in rows]

    def running(self) -> list[Job]:
        """The jobs running now, in queue order."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs WHERE status='running' ORDER BY seq").fetchall()
        return [Job.from_row(row) for row in rows]

    def claim(self, worker: str = "", devices: list[str] | None = None, job_id: str | None = None) -> Job | None:
        """A waiting job, now running on `devices` by `worker` (its attempts counted): `job_id`, or
        the oldest. None when it is not waiting any more (another worker took it, or it was stopped)."""
        with self._lock:
            if job_id is None:
                row = self._db.execute("SELECT id FROM jobs WHERE status IN ('queued', 'interrupted') ORDER BY seq "
                                       "LIMIT 1").fetchone()  # fmt: skip
                if row is None:
                    return None
                job_id = row["id"]
            now = time.time()
            taken = self._db.execute(
                "UPDATE jobs SET status='running', started=?, beat=?, attempts=attempts+1, worker=?, devices=?, stop_asked=NULL "
                "WHERE id=? AND status IN ('queued', 'interrupted')",
                (now, now, worker or None, json.dumps(devices) if devices else None, job_id)).rowcount  # fmt: skip
        if not taken:
            return None
        self._notify()
        return self.get(job_id)

    def ask_stop(self, job_id: str) -> bool:
        """A person stops a running job that another box's pool runs: that pool sees it at its next
        heartbeat. True when the job was running."""
        with self._lock:
            changed = self._db.execute("UPDATE jobs SET stop_asked=? WHERE id=? AND status='running'",
                                       (time.time(), job_id)).rowcount  # fmt: skip
        return bool(changed)

    def beat(self, worker: str) -> None:
        """`worker` is alive: the heartbeat of each job it runs is now."""
        with self._lock:
            self._db.execute("UPDATE jobs SET beat=? WHERE worker=? AND status='running'", (time.time(), worker))

    # A worker's writes name it (`worker`): once its job was given to another (its heartbeat went
    # silent for a lease: a partition, a stalled process), they change nothing, so a job is never
    # finished, moved or queued again by a worker that no longer runs it.
    @staticmethod
    def _mine(worker: str | None) -> tuple[str, tuple]:
        return (" AND worker=? AND status='running'", (worker,)) if worker else ("", ())

    def progress(self, job_id: str, stage: str, step: int | None, total: int | None, eta: float | None,
                 worker: str | None = None) -> None:  # fmt: skip
        mine, args = self._mine(worker)
        with self._lock:
            self._db.execute("UPDATE jobs SET stage=?, step=?, total=?, eta=? WHERE id=?" + mine,
                             (stage, step, total, eta, job_id, *args))  # fmt: skip
        self._notify()

    def finish(self, job_id: str, status: str, *, result: dict | None = None, video: str | None = None,
               error: dict | None = None, error_kind: str | None = None, seconds: float | None = None,
               peak_gb: float | None = None, worker: str | None = None) -> bool:  # fmt: skip
        """End the job; False when `worker` no longer runs it (nothing changed)."""
        assert status in ENDED
        mine, args = self._mine(worker)
        with self._lock:
            changed = self._db.execute(
                "UPDATE jobs SET status=?, finished=?, result=?, video=?, error=?, error_kind=?, seconds=?, peak_gb=?, "
                "stage=NULL, step=NULL, total=NULL, eta=NULL WHERE id=?" + mine,
                (status, time.time(), json.dumps(result) if result is not None else None, video,
                 json.dumps(error) if error is not None else None, error_kind, seconds, peak_gb, job_id,
                 *args)).rowcount  # fmt: skip
        self._notify()
        return bool(changed)

    def requeue(self, job_id: str, worker: str | None = None) -> None:
        """A running job back to the queue's front, its attempt not counted (a clean shutdown)."""
        mine, args = self._mine(worker)
        with self._lock:
            self._db.execute("UPDATE jobs SET status='queued', attempts=MAX(attempts-1, 0), stage=NULL, step=NULL, "
                             "total=NULL, eta=NULL WHERE id=? AND status='running'" + mine, (job_id, *args))  # fmt: skip
        self._notify()

    def stop_queued(self, job_id: str) -> bool:
        """Stop a job that has not started: True when it was still queued."""
        with self._lock:
            changed = self._db.execute("UPDATE jobs SET status='stopped', finished=? WHERE id=? AND status IN "
                                       "('queued', 'interrupted')",
                                       (time.time(), job_id)).rowcount  # fmt: skip
        self._notify()
        return bool(changed)

    def thumbnail(self, job_id: str) -> Path:
        """Where a finished job's thumbnail (its video's first frame, a small JPEG) is kept."""
        return self.root / "thumbs" / f"{job_id}.jpg"

    def delete(self, job: Job) -> None:
        """Remove an ended job's record, its files, its thumbnail, its video and the video's JSON."""
        assert job.status in ENDED
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE id=?", (job.id,))
        shutil.rmtree(self.root / "inputs" / job.id, ignore_errors=True)
        self.thumbnail(job.id).unlink(missing_ok=True)
        if job.video:
            video = Path(job.video)
            video.unlink(missing_ok=True)
            video.with_suffix(".json").unlink(missing_ok=True)
        self._notify()

    def remove_old(self, keep_days: float | None, keep_gb: float | None) -> list[str]:
        """Retention: remove ended jobs older than `keep_days`, then the oldest ended ones until all
        videos take at most `keep_gb`. A job that ended in the last RETENTION_GRACE_S seconds stays
        (its page or batch is still reading it). Returns the ids removed."""
        removed = []
        ended = [job for job in reversed(self.list(limit=10**9)) if job.status in ENDED]  # oldest first
        recent = time.time() - RETENTION_GRACE_S
        if keep_days is not None:
            cutoff = time.time() - keep_days * 86400
            for job in [job for job in ended if (job.finished or job.created) < cutoff]:
                self.delete(job)
                removed.append(job.id)
            ended = [job for job in ended if job.id not in removed]
        if keep_gb is not None:
            sizes = {job.id: _size(job.video) for job in ended}
            total = sum(sizes.values())
            for job in ended:
                if total <= keep_gb * 1024**3 or (job.finished or job.created) >= recent:
                    break
                self.delete(job)
                removed.append(job.id)
                total -= sizes[job.id]
        return removed

    # ------------------------------------------------------------------ waiting for changes
    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def wait(self, timeout: float) -> None:
        """Wait until a job changes in this process, or `timeout` seconds."""
        with self._changed:
            self._changed.wait(timeout)

    def close(self) -> None:
        with self._lock:
            self._db.close()
        if self._held is not None:
            self._held.close()
            self._held = None


def _size(path: str | None) -> int:
    try:
        return Path(path).stat().st_size if path else 0
    except OSError:
        return 0
