"""One device's worker: its own studio (an engine on that GPU, keeping its own loaded model) runs
the jobs the pool (pool.py) gives it: refine first when the policy says so, then the engine, writing
progress, the result or the error back to the store. Stop reaches a running job at its next step.

Before a job runs, the free disk space is checked against its estimated output size. A job that
fails is one clear message in its own language; a bug is logged with its traceback and the job
says "internal error", nothing more (no server path, no traceback reaches a client)."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import socket
import threading
import time
from pathlib import Path

from i2v.chain import chained_frames
from i2v.errors import InvalidInput, ModelNotAvailable, OutOfMemory, RankLost
from messages import MessageError, note

from .metrics import Metrics
from .service import factor_of, segments_of
from .store import Job, JobStore

log = logging.getLogger("studio.worker")

BYTES_PER_PIXEL = 0.5  # an H.264 video at the export's quality stays well under this (about 0.1-0.2 measured)
DISK_MARGIN = 200 * 1024**2  # left free beside the estimate: the JSON, the partial file, the system


class Worker:
    """The worker of slot `index` (one device of I2V_DEVICES, `spec`), with its own `studio`. The
    pool says what it runs; `job` is what it runs now (or leads, for a video across several GPUs),
    `group` the slots of such a video it belongs to."""

    def __init__(self, pool, index: int, spec, studio, store: JobStore, metrics: Metrics | None = None):
        self.pool, self.index, self.spec, self.studio, self.store, self.metrics = pool, index, spec, studio, store, metrics
        self.name = f"{socket.gethostname()}:{os.getpid()}:{index}"  # the job's `worker`: which process and slot
        self.job: Job | None = None
        self.group: list[int] | None = None

    @property
    def device(self) -> str:
        return self.studio.engine.device

    @property
    def free(self) -> bool:
        return self.job is None

    def fail(self, job: Job | None) -> None:
        """A job the worker could not finish (the store failed under it): failed, not left running."""
        if job is None:
            return
        try:
            if (self.store.get(job.id) or job).status == "running":
                text = self.studio.say(note("store.internal_error"), job.language)
                self.store.finish(job.id, "failed", error={"code": "store.internal_error", "text": text},
                                  error_kind="internal", worker=self.name)  # fmt: skip
                if self.metrics:
                    self.metrics.failures.labels("internal").inc()
        except Exception:  # noqa: BLE001 - the store itself is failing: the next start finds it running
            log.exception("could not mark job %s failed", job.id)

    def run(self, job: Job, cancel: threading.Event, devices: list[str] | None = None) -> None:
        """Run `job` (on `devices`: this slot's, or a group's for a video across several GPUs)."""
        studio, language = self.studio, job.language
        started = time.monotonic()
        log.info("job %s (%s, attempt %d) starts", job.id, job.owner, job.attempts)

        def on_progress(update) -> None:
            update = update.whole()  # a long video's bar runs once over all its segments
            self.store.progress(job.id, update.stage, update.step, update.total, update.eta, worker=self.name)

        try:
            self._check_disk(job)
            _reset_peak(self.device)
            outcome = studio.run(dict(job.form), job.form.get("last_refine") or {}, language, on_progress, cancel,
                                 devices=devices)  # fmt: skip
        except RankLost as exc:  # a process of a video across GPUs died (killed): run again, like a restart
            if self.pool.asked(job.id) or self.pool.stopping:  # stopped by a person, or the shutdown, as it died
                self._stopped(job, {"params": {"stopped": True}}, round(time.monotonic() - started, 2))
                return
            again = self.store.lost(job.id, worker=self.name)
            log.warning("job %s: %s; %s", job.id, exc, "queued again" if again and again.status != "failed"
                        else "failed: it was interrupted too often")  # fmt: skip
            return
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
                              seconds=round(time.monotonic() - started, 2), worker=self.name)  # fmt: skip
            if self.metrics:
                self.metrics.failures.labels(kind).inc()
            return
        seconds = round(time.monotonic() - started, 2)
        peak = _peak_gb(self.device) if len(devices or []) < 2 else None  # a group's ranks are other processes
        result = {
            "prompt": outcome.prompt, "negative_prompt": outcome.negative_prompt, "camera_motion": outcome.camera_motion,
            "warnings": outcome.warnings, "infos": outcome.infos, "params": outcome.params,
            "refined": dataclasses.asdict(outcome.refined) if outcome.refined else None,
        }  # fmt: skip
        if outcome.result is None:
            self._stopped(job, result, seconds)
            return
        if self._shut_down(job, outcome.result):
            return
        model = outcome.result.family
        self._thumbnail(job.id, outcome.result.path)  # before it is done: the history shows it at once
        if not self.store.finish(job.id, "done", result=result, video=str(outcome.result.path), seconds=seconds,
                                 peak_gb=peak, worker=self.name):  # fmt: skip
            # another worker runs it now (this one's heartbeat went silent too long): its video is that one's
            for path in (outcome.result.path, outcome.result.metadata_path):
                Path(path).unlink(missing_ok=True)
            log.warning("job %s was given to another worker meanwhile: this run's video removed", job.id)
            return
        log.info("job %s done in %.1f s: %s", job.id, seconds, outcome.result.path.name)
        if self.metrics:
            self.metrics.generation_seconds.labels(model).observe(seconds)
            if peak is not None:
                self.metrics.peak_gpu_gb.labels(model).observe(peak)

    def _stopped(self, job: Job, result: dict, seconds: float) -> None:
        """A job that stopped before its video: queued again when the shutdown stopped it, else stopped."""
        if self.pool.stopping and not self.pool.asked(job.id):  # the shutdown stopped it, not a person
            self.store.requeue(job.id, worker=self.name)
            log.info("job %s stopped by the shutdown: queued again", job.id)
            return
        self.store.finish(job.id, "stopped", result=result, seconds=seconds, worker=self.name)
        log.info("job %s stopped", job.id)

    def _shut_down(self, job: Job, result) -> bool:
        """A long video the shutdown stopped (not a person) keeps what it made (finished segments,
        or frames not yet interpolated or upscaled): that is not what was asked. Its files go and the
        job is queued again, as a job the shutdown stopped before any video; True when so."""
        if not self.pool.stopping or self.pool.asked(job.id):
            return False
        if not any(said.code in ("chain.stopped_kept", "post.skipped_stopped") for said in result.adjustments):
            return False
        for path in (result.path, result.metadata_path):
            Path(path).unlink(missing_ok=True)
        self.store.requeue(job.id, worker=self.name)
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

        torch.cuda.reset_peak_memory_stats(device)  # this worker's GPU: another's runs beside it


def _peak_gb(device: str) -> float | None:
    if not str(device).startswith("cuda"):
        return None
    import torch

    return round(torch.cuda.max_memory_allocated(device) / 1024**3, 2)
