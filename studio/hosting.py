"""Hosting: the studio for many clients on one GPU box. Every job goes through the job store and its
pool of workers (one per GPU of I2V_DEVICES), whoever asks (the page, the REST API, `i2v batch`): one
queue, one set of positions, and nothing lost on a restart. This is where a job is checked before it
is queued (a bad value is refused at once, never after minutes in the queue), waited for, stopped,
listed for its owner, and shown to a client without this machine's paths. No gradio and no HTTP in
here."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from i2v.checks import check
from messages import MessageError

from .metrics import Metrics
from .pool import Pool
from .service import Studio, StudioError
from .store import ENDED, Job, JobStore, file_suffix, head_of, other_files, with_file

ANYONE = "local"  # the owner of every job when nobody signs in


def public_model(value: str | None) -> str | None:
    """A model as a client names it: a family id, or a local model folder by its name only."""
    return Path(value).name if value and ("/" in value or "\\" in value) else value


def make_hosting(settings, *, store=None, specs=None, lease_s: float | None = None) -> Hosting:
    """The engines (one per device of I2V_DEVICES, or `specs`), the refiner, a studio per device and
    the job store (`store`: a shared one, several boxes; else the output folder's), from the app's
    settings (settings.py): made once by the server, or by a local `i2v batch`. Refused, naming it,
    when a device is not on this machine."""
    from i2v.hardware import absent, detect

    hardware = detect()
    specs = specs or settings.device_specs()
    missing = absent([spec.device for spec in specs], len(hardware.gpus))
    if missing:
        raise StudioError("pool.no_such_gpu", device=missing[0], count=len(hardware.gpus))
    refiner = make_refiner(settings)
    studios = [Studio(engine_for(settings, spec.device), refiner, hardware, auto_refine=settings.auto_refine,
                      llm_configured=settings.llm_configured, model=settings.model) for spec in specs]  # fmt: skip
    if len(studios) > 1 and hardware.ram_gb:  # jobs side by side offload into one host RAM: each plans with its share
        for studio in studios:
            studio.engine.ram_gb = hardware.ram_gb / len(studios)
    store = store if store is not None else JobStore(settings.output_dir, settings.queue_size, db=settings.store_db)
    return Hosting(studios, store, specs=specs, keep_days=settings.keep_days, keep_gb=settings.keep_gb,
                   lease_s=lease_s)  # fmt: skip


def engine_for(settings, device: str | None):
    """An engine on `device` with the settings' folders and default strategy."""
    from i2v.engine import VideoEngine

    return VideoEngine(settings.output_dir, device=device, offload=settings.offload, lora_dir=settings.lora_dir,
                       cache_dir=settings.cache_dir, upscaler_dir=settings.upscaler_dir,
                       interpolator_dir=settings.interpolator_dir)  # fmt: skip


def make_refiner(settings):
    """The prompt refiner of the settings' LLM endpoint (OPENAI_BASE_URL, I2V_LLM_MODEL, ...); the
    offline rules without one. The server's, a local `i2v batch`'s and the `i2v` command's."""
    from prompting import Endpoint, PromptRefiner

    endpoint = None
    if settings.llm_configured:
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        endpoint = Endpoint(settings.openai_base_url, settings.llm_model, key, settings.llm_vision)
    return PromptRefiner(endpoint, timeout_s=settings.llm_timeout_s)


class Hosting:
    def __init__(self, studios: Studio | list[Studio], store: JobStore, *, specs=None, keep_days: float | None = None,
                 keep_gb: float | None = None, lease_s: float | None = None):  # fmt: skip
        """`studios`: one per device (`specs`, I2V_DEVICES; one studio: its engine's device). The first
        is the page's (its panel, its advice); every one runs jobs."""
        from i2v.hardware import DeviceSpec

        studios = studios if isinstance(studios, list) else [studios]
        specs = specs or [DeviceSpec(studio.engine.device) for studio in studios]
        self.studio, self.store = studios[0], store
        self.metrics = Metrics(store)
        for studio in studios:
            studio.metrics = self.metrics
        self.pool = Pool(store, list(zip(specs, studios)), self.metrics, keep_days=keep_days, keep_gb=keep_gb,
                         lease_s=lease_s)  # fmt: skip
        self.workers: int | None = None  # the store's workers on every box (several boxes); None: this pool's

    def start(self) -> None:
        self.pool.start()

    def hold(self) -> None:
        """Hold the store (refused when another process holds it); `begin` then runs its jobs."""
        self.pool.hold()

    def begin(self) -> None:
        self.pool.begin()

    def close(self) -> None:
        self.pool.close()

    # ------------------------------------------------------------------ submitting
    def submit(self, form: dict, owner: str, language: str, *, photo: Path | bytes | None = None, suffix: str = ".png",
               session: str | None = None, last_refine: dict | None = None,
               others: dict[str, tuple[bytes, str]] | None = None) -> Job:  # fmt: skip
        """Check the form as a request, then queue it with its files copied into the store. The end
        photo, keyframes, references and soundtrack are paths in the form (the page, batch), or
        uploaded bytes in `others` (the API), named as `other_files` names them. Raises the studio's
        errors (a missing photo, a bad value, a full queue) before anything is queued."""
        form = self.studio.with_keyframes(form)  # the page's keyframe photos and frames, as the form's keyframes
        form = self.studio.with_references(form)  # the page's reference slots, as the form's references
        photo = photo if photo is not None else (Path(form["image"]) if form.get("image") else None)
        if photo is None:
            raise StudioError("studio.no_photo")
        if isinstance(photo, Path):
            suffix = photo.suffix or suffix
        files: dict[str, tuple[Path | bytes, str]] = {name: (Path(path), Path(path).suffix)
                                                      for name, path in other_files(form).items()}  # fmt: skip
        files.update(others or {})
        checked_form, scratches = dict(form), []
        try:
            # Checked from files of their own, as the worker will open them
            for name, (data, data_suffix) in {"image": (photo, suffix), **files}.items():
                if isinstance(data, bytes):
                    data = self.scratch(data, data_suffix, name)
                    scratches.append(data)
                checked_form = ({**checked_form, "image": str(data)} if name == "image"
                                else with_file(checked_form, name, str(data)))  # fmt: skip
            request = self.studio.request(checked_form)
            if request.gpus > self.pool.capacity:  # before the model's own rules: this server could not run it anyway
                raise StudioError("pool.too_many_gpus", gpus=request.gpus, have=self.pool.capacity)
            check(request)
        except (MessageError, ValidationError):
            self.metrics.failures.labels("bad_input").inc()
            raise
        finally:
            for path in scratches:
                self.drop_scratch(path)
        form = {**form, "last_refine": last_refine or {}}
        form.pop("image", None)
        return self.store.submit(owner, form, photo, suffix, session=session, language=language, others=files)

    def scratch(self, data: bytes, suffix: str, name: str = "image") -> Path:
        """An uploaded file (a photo, a clip, a soundtrack) as a file for a moment (to check it, or to
        refine with it), named by the field it came in ("image", "last_image", "reference_1", ...),
        which is what a message about it will name."""
        import secrets

        folder = self.store.root / f".check-{secrets.token_hex(6)}"
        folder.mkdir()
        path = folder / f"{name}{file_suffix(name, suffix, head=head_of(data))}"
        path.write_bytes(data)
        return path

    @staticmethod
    def drop_scratch(path: Path) -> None:
        import shutil

        shutil.rmtree(path.parent, ignore_errors=True)

    # ------------------------------------------------------------------ following, stopping
    def wait(self, job_id: str, on_change: Callable[[Job], None] | None = None) -> Job | None:
        """Wait for the job to end, calling `on_change` with it as it moves. Returns when it ends,
        or when the server stops (it stays queued then)."""
        seen = None
        while True:
            job, seen = self._look(job_id, on_change, seen)
            if job is None or job.status in ENDED or self.pool.stopping:
                return job
            self.store.wait(0.25)

    async def follow(self, job_id: str, on_change: Callable[[Job], None] | None = None) -> Job | None:
        """`wait`, for an event loop: polls the store without holding a thread."""
        import asyncio

        seen = None
        while True:
            job, seen = self._look(job_id, on_change, seen)
            if job is None or job.status in ENDED or self.pool.stopping:
                return job
            await asyncio.sleep(0.25)

    def _look(self, job_id: str, on_change, seen) -> tuple[Job | None, tuple | None]:
        """The job now, with `on_change` told when it moved since `seen` (its status, stage, step or
        place in the queue)."""
        job = self.store.get(job_id)
        if job is None or job.status in ENDED:
            return job, seen
        state = (job.status, job.stage, job.step, self.position(job))
        if on_change is not None and state != seen:
            on_change(job)
        return job, state

    def position(self, job: Job) -> int | None:
        """How many jobs must start or end before `job` starts, with every worker of the store side by
        side (this pool's, or on several boxes the cluster's: `workers`)."""
        return self.store.position(job, self.workers or self.pool.capacity)

    def stop_session(self, session: str) -> bool:
        """Stop every job a browser tab started that has not ended."""
        stopped = False
        for job in self.store.list(session=session, limit=10**6):
            if job.status not in ENDED:
                stopped = self.pool.cancel(job) or stopped
        return stopped

    # ------------------------------------------------------------------ what a client sees
    def history(self, owner: str | None, limit: int = 200) -> list[dict]:
        """The jobs of `owner` (everyone's with None), oldest first, as the page's history items: a
        finished video's metadata and path; for the others what was asked, and their status."""
        items = []
        for job in reversed(self.store.list(owner, limit=limit)):
            when = time.strftime("%m-%d %H:%M", time.localtime(job.finished or job.created))
            if job.status == "done" and job.result:
                thumb = self.store.thumbnail(job.id)
                items.append({**job.result["params"], "job": job.id, "status": job.status, "time": when,
                              "thumbnail": str(thumb) if thumb.is_file() else None})  # fmt: skip
                continue
            form = job.form
            items.append({"job": job.id, "status": job.status, "time": when, "family": form.get("model"),
                          "seed": form.get("seed"), "width": form.get("width"), "height": form.get("height"),
                          "prompt": form.get("prompt") or form.get("words") or ""})  # fmt: skip
        return items

    def delete(self, job_id: str, owner: str | None) -> bool:
        """What DELETE means, from any client of the job's owner (anyone's with None): a job still
        queued or running is stopped (True), an ended one is deleted with its files (False)."""
        job = self.store.get(job_id, owner=owner)
        if job is None:
            raise StudioError("store.no_such_job", job=job_id[:40])
        if job.status not in ENDED:
            self.pool.cancel(job)
            return True
        self.store.delete(job)
        return False

    def public(self, job: Job) -> dict:
        """The job as a client sees it: no path on this machine, the video as a URL of the API."""
        result = None
        if job.result:
            # the video's metadata names a model folder by its name already (VideoResult.metadata)
            params = {key: value for key, value in (job.result.get("params") or {}).items()
                      if key not in ("output_path", "metadata_file")}  # fmt: skip
            # whether the MP4 carries sound, and whence (the model's own, or the soundtrack), said at the top too
            result = {**{k: v for k, v in job.result.items() if k not in ("params", "refined")},
                      "refined_details": (job.result.get("refined") or {}).get("details"),
                      "has_audio": bool(params.get("has_audio")), "audio": params.get("audio"), "video": params}  # fmt: skip
        return {
            "id": job.id, "status": job.status, "owner": job.owner, "created": job.created, "started": job.started,
            "finished": job.finished, "attempts": job.attempts, "position": self.position(job),
            "progress": {"stage": job.stage, "step": job.step, "total": job.total, "eta_seconds": job.eta},
            "prompt": job.form.get("prompt") or job.form.get("words"), "model": public_model(job.form.get("model")),
            "seed": job.form.get("seed"), "result": result, "error": job.error,
            "video_url": f"/api/v1/jobs/{job.id}/video" if job.status == "done" else None,
            "seconds": job.seconds, "peak_gpu_gb": job.peak_gb, "devices": job.devices,
        }  # fmt: skip

