"""The one GPU worker: takes the store's jobs in order and runs each through the studio (refine
first when the policy says so, then the engine), writing progress, the result or the error back to
the store. Stop reaches a queued job at once and a running one at its next step.

Before a job runs, the free disk space is checked against its estimated output size. A job that
fails is one clear message in its own language; a bug is logged with its traceback and the job
says "internal error", nothing more (no server path, no traceback reaches a client)."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import threading
import time
from pathlib import Path

from i2v.chain import chained_frames
from i2v.errors import InvalidInput, ModelNotAvailable, OutOfMemory
from messages import MessageError, note

from .metrics import Metrics
from .service import factor_of, segments_of
from .store import Job, JobStore

log = logging.getLogger("studio.worker")

BYTES_PER_PIXEL = 0.5  # an H.264 video at the export's quality stays well under this (about 0.1-0.2 measured)
DISK_MARGIN = 200 * 1024**2  # left free beside the estimate: the JSON, the partial file, the system


class Worker:
    def __init__(self, store: JobStore, studio, metrics: Metrics | None = None, *, keep_days: float | None = None,
                 keep_gb: float | None = None):  # fmt: skip
        self.store, self.studio, self.metrics = store, studio, metrics
        self.keep_days, self.keep_gb = keep_days, keep_gb
        self._flags: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._asked: set[str] = set()  # jobs a person stopped (not the shutdown)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Hold the store, then start taking jobs."""
        self.hold()
        self.begin()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def hold(self) -> None:
        """Hold the store (refused when another process holds it) and mark what a dead process left
        running as interrupted. Takes no job yet: a server begins once it listens."""
        self.store.hold()
        for job in self.store.recover():
            if job.status == "failed":
                log.warning("job %s was interrupted %d times: failed", job.id, job.attempts)
                if self.metrics:
                    self.metrics.failures.labels("interrupted").inc()
            else:
                log.warning("job %s was interrupted (attempt %d): queued again", job.id, job.attempts)
        self._retain()

    def begin(self) -> None:
        """Start taking jobs, in order, in a thread of its own."""
        self._thread = threading.Thread(target=self._loop, name="gpu-worker", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Shut down: a running job stops at its next step and is queued again, its attempt not
        counted (nobody stopped it, and the process did not die). One that does not reach a step
        within `timeout` (loading a model, say) is queued again the same way as the process ends."""
        self.stop_soon()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                with self._lock:
                    running = [job_id for job_id in self._flags if job_id not in self._asked]
                for job_id in running:
                    self.store.requeue(job_id)

    def stop_soon(self) -> None:
        """Start shutting down without waiting: no job starts any more, a running one stops at its
        next step (and is queued again)."""
        self._stopping.set()
        with self._lock:
            for flag in self._flags.values():
                flag.set()

    def cancel(self, job: Job) -> bool:
        """Stop `job`: a queued one at once, a running one at its next step. False when it had ended."""
        with self._lock:
            if self.store.stop_queued(job.id):
                return True
            flag = self._flags.get(job.id)
            if flag is not None:
                self._asked.add(job.id)
        if flag is None:
            return False
        flag.set()
        return True

    # ------------------------------------------------------------------ the loop
    def _loop(self) -> None:
        while not self._stopping.is_set():
            job = None
            try:  # the loop outlives any one job, and any trouble with the store (it says so, and waits)
                with self._lock:
                    if self._stopping.is_set():  # shut down between the loop's test and here
                        break
                    job = self.store.claim()
                    if job is not None:
                        self._flags[job.id] = threading.Event()
                if job is None:
                    self.store.wait(0.5)
                    continue
                self._run(job, self._flags[job.id])
                self._retain()
            except Exception:  # noqa: BLE001
                log.exception("the worker failed around job %s", job.id if job else "(none)")
                self._fail(job)
                self._stopping.wait(1.0)
            finally:
                if job is not None:
                    with self._lock:
                        self._flags.pop(job.id, None)
                        self._asked.discard(job.id)

    def _fail(self, job: Job | None) -> None:
        """A job the worker could not finish (the store failed under it): failed, not left running."""
        if job is None:
            return
        try:
            if (self.store.get(job.id) or job).status == "running":
                text = self.studio.say(note("store.internal_error"), job.language)
                self.store.finish(job.id, "failed", error={"code": "store.internal_error", "text": text},
                                  error_kind="internal")  # fmt: skip
                if self.metrics:
                    self.metrics.failures.labels("internal").inc()
        except Exception:  # noqa: BLE001 - the store itself is failing: the next start finds it running
            log.exception("could not mark job %s failed", job.id)

    def _retain(self) -> None:
        """Retention (I2V_KEEP_DAYS, I2V_KEEP_GB): the oldest finished jobs go, with their videos."""
        if self.keep_days is None and self.keep_gb is None:
            return
        removed = self.store.remove_old(self.keep_days, self.keep_gb)
        if removed:
            log.info("retention removed %d finished job(s) and their videos", len(removed))

    def _run(self, job: Job, cancel: threading.Event) -> None:
        studio, language = self.studio, job.language
        started = time.monotonic()
        log.info("job %s (%s, attempt %d) starts", job.id, job.owner, job.attempts)

        def on_progress(update) -> None:
            update = update.whole()  # a long video's bar runs once over all its segments
            self.store.progress(job.id, update.stage, update.step, update.total, update.eta)

        try:
            self._check_disk(job)
            _reset_peak(studio.engine.device)
            outcome = studio.run(dict(job.form), job.form.get("last_refine") or {}, language, on_progress, cancel)
        except Exception as exc:  # noqa: BLE001 - every failure ends the job with words
            text = studio.explain(exc, language)
            kind = _kind(exc)
            if text is None:
                log.exception("job %s failed", job.id)
                text = studio.say(note("store.internal_error"), language)
            else:
                log.info("job %s failed: %s", job.id, text)
            code = exc.message.code if isinstance(exc, MessageError) else "invalid" if kind == "bad_input" \
                else "store.internal_error"  # fmt: skip
            self.store.finish(job.id, "failed", error={"code": code, "text": text}, error_kind=kind,
                              seconds=round(time.monotonic() - started, 2))  # fmt: skip
            if self.metrics:
                self.metrics.failures.labels(kind).inc()
            return
        seconds = round(time.monotonic() - started, 2)
        peak = _peak_gb(studio.engine.device)
        result = {
            "prompt": outcome.prompt, "negative_prompt": outcome.negative_prompt, "camera_motion": outcome.camera_motion,
            "warnings": outcome.warnings, "infos": outcome.infos, "params": outcome.params,
            "refined": dataclasses.asdict(outcome.refined) if outcome.refined else None,
        }  # fmt: skip
        if outcome.result is None:
            if self._stopping.is_set() and job.id not in self._asked:  # the shutdown stopped it, not a person
                self.store.requeue(job.id)
                log.info("job %s stopped by the shutdown: queued again", job.id)
                return
            self.store.finish(job.id, "stopped", result=result, seconds=seconds)
            log.info("job %s stopped", job.id)
            return
        if self._shut_down(job, outcome.result):
            return
        model = outcome.result.family
        self._thumbnail(job.id, outcome.result.path)
        self.store.finish(job.id, "done", result=result, video=str(outcome.result.path), seconds=seconds, peak_gb=peak)
        log.info("job %s done in %.1f s: %s", job.id, seconds, outcome.result.path.name)
        if self.metrics:
            self.metrics.generation_seconds.labels(model).observe(seconds)
            if peak is not None:
                self.metrics.peak_gpu_gb.labels(model).observe(peak)

    def _shut_down(self, job: Job, result) -> bool:
        """A long video the shutdown stopped (not a person) keeps what it made (finished segments,
        or frames not yet interpolated or upscaled): that is not what was asked. Its files go and the
        job is queued again, as a job the shutdown stopped before any video; True when so."""
        if not self._stopping.is_set() or job.id in self._asked:
            return False
        if not any(said.code in ("chain.stopped_kept", "post.skipped_stopped") for said in result.adjustments):
            return False
        for path in (result.path, result.metadata_path):
            Path(path).unlink(missing_ok=True)
        self.store.requeue(job.id)
        log.info("job %s stopped by the shutdown after some of its segments: their video removed, queued again",
                 job.id)  # fmt: skip
        return True

    def _thumbnail(self, job_id: str, video) -> None:
        """The history's picture of a finished video: its first frame, 256 pixels at most a side,
        written whole under its final name. A video that cannot give one simply has none."""
        from PIL import Image

        from i2v.export import first_frame

        path = self.store.thumbnail(job_id)
        partial = path.with_name(f".{path.name}.part")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            picture = Image.fromarray(first_frame(video))
            picture.thumbnail((256, 256))
            picture.save(partial, format="JPEG", quality=85)
            os.replace(partial, path)
        except Exception as exc:  # noqa: BLE001 - a thumbnail is a nicety: the video is what counts
            partial.unlink(missing_ok=True)
            log.warning("job %s: no thumbnail (%s)", job_id, exc)

    def _check_disk(self, job: Job) -> None:
        form = job.form
        try:
            family = self.studio.family(form["model"])
        except Exception:  # noqa: BLE001 - a model gone since: its run says so; the estimate takes the usual video
            family = None
        per_call = int(form.get("num_frames") or (family.num_frames if family else 81))
        count = len(segments_of(form.get("segments"))) or 1
        if family is not None and family.multi_prompt:
            count = 1  # its segments are one call's prompts
        fps = int(form.get("fps") or (family.fps if family else 24))
        frames = max(chained_frames(per_call, count),  # a long video: its segments, or its duration
                     round(float(form.get("duration") or 0) * fps))
        frames = (frames - 1) * factor_of(form.get("interpolate")) + 1
        side = factor_of(form.get("upscale"))
        pixels = int(form.get("height") or 720) * side * int(form.get("width") or 1280) * side * frames
        needed = int(pixels * BYTES_PER_PIXEL) + DISK_MARGIN
        free = shutil.disk_usage(self.studio.engine.output_dir).free
        if free < needed:
            raise InvalidInput("store.disk_full", free_mb=free // 1024**2, needed_mb=needed // 1024**2)


def _kind(exc: BaseException) -> str:
    if isinstance(exc, OutOfMemory):
        return "out_of_memory"
    if isinstance(exc, ModelNotAvailable):
        return "model_missing"
    if isinstance(exc, MessageError) or type(exc).__name__ == "ValidationError":
        return "bad_input"
    return "internal"


def _reset_peak(device: str) -> None:
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats()


def _peak_gb(device: str) -> float | None:
    if not str(device).startswith("cuda"):
        return None
    import torch

    return round(torch.cuda.max_memory_allocated() / 1024**3, 2)
