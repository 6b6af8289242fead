"""The pool: one worker per device of I2V_DEVICES (worker.py), each with its own engine and loaded
model, and one dispatcher that gives them the store's jobs.

Dispatch is fair: the waiting jobs are taken in queue order, and each goes to a free device whose
memory fits it (the planner runs per device, with that device's own free memory), the one already
holding its model first, then the smallest that fits (the large ones stay free for large jobs). A
job that no free device fits waits, and the devices it fits are kept for it: a later job may only
run on a device the waiting one could not use, so nobody is overtaken on the devices they need.
A job that fits no device by the planner may go to any (the engine then plans it as it can and
says so). A job asking several GPUs (`gpus`, one video across them) waits for that many free
devices at once; its group runs it through one process per GPU (i2v/parallel.py).

On one box the pool's process holds the store (`hold`). Several boxes (studio/cluster.py) share one
store: there every running job carries its worker's heartbeat, and each pool queues again the jobs
whose worker went silent for `lease_s` seconds (a killed replica, a dead node)."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .metrics import Metrics
from .store import WAITING, Job, JobStore
from .worker import Worker

log = logging.getLogger("studio.pool")

BEAT_EVERY_S = 10.0  # heartbeats on one box (a shared store beats at a quarter of its lease)


@dataclass(frozen=True)
class SlotView:
    """A device as dispatch sees it: free or busy, the memory the planner may count on (None: no
    size, a CPU: every job fits), and the family whose model it holds."""

    index: int
    free: bool
    gb: float | None = None
    loaded: str | None = None


def assign(jobs: list[Job], slots: list[SlotView], fits: Callable[[Job, SlotView], bool],
           model: Callable[[Job], str | None] = lambda job: None) -> list[tuple[Job, list[int]]]:  # fmt: skip
    """Which waiting jobs start now, on which devices: `jobs` in queue order, each on `job.gpus`
    free devices that `fits` it. A job that cannot start keeps every device it fits from the jobs
    behind it. `model`: the family a job runs, to prefer the device that holds it."""
    free = {slot.index for slot in slots if slot.free}
    kept: set[int] = set()
    plan = []
    for job in jobs:
        if not free - kept:
            break
        need = job.gpus
        if need > len(slots):
            continue  # never placed here (the pool fails it: it asks more devices than there are)
        fitting = [slot for slot in slots if fits(job, slot)]
        if len(fitting) < need:
            fitting = list(slots)  # no device fits it by the planner: any may try (the engine plans it as it can)
        usable = [slot for slot in fitting if slot.index in free and slot.index not in kept]
        if len(usable) < need:
            kept |= {slot.index for slot in fitting}
            continue
        wanted = model(job)
        usable.sort(key=lambda slot: (wanted is None or slot.loaded != wanted, slot.gb or math.inf, slot.index))
        chosen = [slot.index for slot in usable[:need]]
        free -= set(chosen)
        plan.append((job, chosen))
    return plan


class Pool:
    def __init__(self, store: JobStore, slots: list[tuple], metrics: Metrics | None = None, *,
                 keep_days: float | None = None, keep_gb: float | None = None, lease_s: float | None = None):  # fmt: skip
        """`slots`: (DeviceSpec, Studio) pairs, one per device; `lease_s`: a store shared with other
        boxes (heartbeats and reclaiming instead of holding it)."""
        self.store, self.metrics = store, metrics
        self.keep_days, self.keep_gb, self.lease_s = keep_days, keep_gb, lease_s
        self.workers = [Worker(self, index, spec, studio, store, metrics) for index, (spec, studio) in enumerate(slots)]
        self._flags: dict[str, threading.Event] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._asked: set[str] = set()  # jobs a person stopped (not the shutdown)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._dispatcher: threading.Thread | None = None
        self._fitted: dict[tuple, bool] = {}

    @property
    def capacity(self) -> int:
        """The most GPUs one job may ask: the pool's devices."""
        return len(self.workers)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def asked(self, job_id: str) -> bool:
        """A person stopped this job (not the shutdown)."""
        return job_id in self._asked

    # ------------------------------------------------------------------ starting, stopping
    def start(self) -> None:
        """Hold the store, then start taking jobs."""
        self.hold()
        self.begin()

    def hold(self) -> None:
        """Hold the store (refused when another process holds it) and mark what a dead process left
        running as interrupted. Takes no job yet: a server begins once it listens. A shared store
        (several boxes) is not held: its jobs' heartbeats say which worker is gone."""
        if self.lease_s is None:
            self.store.hold()
            self._interrupted(self.store.recover())
        else:
            self._interrupted(self.store.reclaim(self.lease_s))
        self._retain()

    def _interrupted(self, jobs: list[Job]) -> None:
        """Say (and count) the jobs whose worker died under them: queued again, or failed."""
        for job in jobs:
            if job.status == "failed":
                log.warning("job %s lost its worker %d times: failed", job.id, job.attempts)
                if self.metrics:
                    self.metrics.failures.labels("interrupted").inc()
            elif job.status == "stopped":
                log.info("job %s lost its worker after a stop was asked: stopped", job.id)
            else:
                log.warning("job %s lost its worker %s (attempt %d): queued again", job.id, job.worker or "",
                            job.attempts)  # fmt: skip

    def begin(self) -> None:
        """Start giving jobs to the workers, in a thread of its own."""
        self._dispatcher = threading.Thread(target=self._loop, name="gpu-dispatch", daemon=True)
        self._dispatcher.start()
        log.info("%d worker(s): %s", len(self.workers), ", ".join(f"{w.index}: {w.spec.device or w.device}"
                                                                 + (f" ({w.spec.gb:g} GB)" if w.spec.gb else "")
                                                                 for w in self.workers))  # fmt: skip

    def close(self, timeout: float = 10.0) -> None:
        """Shut down: a running job stops at its next step and is queued again, its attempt not
        counted (nobody stopped it, and the process did not die). One that does not reach a step
        within `timeout` (loading a model, say) is queued again the same way as the process ends."""
        self.stop_soon()
        deadline = time.monotonic() + timeout
        if self._dispatcher is not None:
            self._dispatcher.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            threads = dict(self._threads)
        for thread in threads.values():
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            running = [(worker.job.id, worker.name) for worker in self.workers
                       if worker.job is not None and (not worker.group or worker.group[0] == worker.index)
                       and worker.job.id not in self._asked and self._threads.get(worker.job.id) is not None
                       and self._threads[worker.job.id].is_alive()]  # fmt: skip
        for job_id, name in running:
            self.store.requeue(job_id, worker=name)

    def stop_soon(self) -> None:
        """Start shutting down without waiting: no job starts any more, a running one stops at its
        next step (and is queued again)."""
        self._stopping.set()
        with self._lock:
            for flag in self._flags.values():
                flag.set()

    def cancel(self, job: Job) -> bool:
        """Stop `job`: a queued one at once, a running one at its next step (one another box's pool
        runs at that pool's next heartbeat). False when it had ended."""
        with self._lock:
            if self.store.stop_queued(job.id):
                return True
            flag = self._flags.get(job.id)
            if flag is not None:
                self._asked.add(job.id)
        if flag is None:
            return self.store.ask_stop(job.id)
        flag.set()
        return True

    # ------------------------------------------------------------------ what each device does
    def describe(self) -> list[dict]:
        """Every device and what it does, in slot order (no paths: a model folder by its name)."""
        from i2v.hardware import detect

        from .hosting import public_model

        try:
            hardware = detect() if any(w.device.startswith("cuda") for w in self.workers) else None
        except Exception:  # noqa: BLE001 - a GPU that cannot say its memory now: shown without it
            hardware = None
        rows = []
        for worker in self.workers:
            gpu = hardware.gpu_for(worker.device) if hardware else None
            total = worker.spec.capped(gpu.total_gb if gpu else None)
            free = worker.spec.capped(gpu.free_gb) if gpu else None
            job = worker.job
            fresh = self.store.get(job.id) if job is not None else None
            state = "idle" if job is None else "group" if worker.group else "running"
            loaded = worker.studio.engine.loaded
            loaded = public_model(loaded.name) if loaded is not None else None  # a model folder by its name
            rows.append({
                "index": worker.index, "device": worker.device, "name": gpu.name if gpu else worker.device,
                "total_gb": round(total, 1) if total else None, "free_gb": round(free, 1) if free is not None else None,
                "state": state, "job": job.id if job else None,
                "model": public_model(job.form.get("model")) if job else None,
                "stage": fresh.stage if fresh else None, "step": fresh.step if fresh else None,
                "total": fresh.total if fresh else None, "group": list(worker.group) if worker.group else None,
                "loaded": loaded,
            })  # fmt: skip
        return rows

    # ------------------------------------------------------------------ dispatching
    def _loop(self) -> None:
        beat_every = BEAT_EVERY_S if self.lease_s is None else max(0.5, self.lease_s / 4)
        last_beat = 0.0
        while not self._stopping.is_set():
            try:  # the dispatcher outlives any trouble with the store (it says so, and waits)
                if time.monotonic() - last_beat >= beat_every:
                    last_beat = time.monotonic()
                    self._beat()
                self._dispatch()
            except Exception:  # noqa: BLE001
                log.exception("the dispatcher failed; it goes on")
                self._stopping.wait(1.0)
            self.store.wait(0.5)

    def _beat(self) -> None:
        """Heartbeats of the jobs this pool runs; on a shared store, a stop asked through another box
        passed on, a job given to another worker meanwhile stopped here (its writes change nothing
        any more), and the jobs of silent workers queued again."""
        for worker in self.workers:
            job = worker.job
            if job is None or (worker.group and worker.group[0] != worker.index):
                continue
            self.store.beat(worker.name)
            if self.lease_s is None:
                continue
            now = self.store.get(job.id) or job
            # queued again (reclaimed), or running elsewhere; an ended one is this run's own ending
            gone = now.status in WAITING or (now.status == "running" and now.worker != worker.name)
            if gone or now.stop_asked:
                if gone:
                    log.warning("job %s was given to another worker: this run stops", job.id)
                with self._lock:
                    flag = self._flags.get(job.id)
                    if flag is not None:
                        self._asked.add(job.id)
                        flag.set()
        if self.lease_s is not None:
            self._interrupted(self.store.reclaim(self.lease_s))

    def _dispatch(self) -> None:
        with self._lock:
            if self._stopping.is_set() or not any(worker.free for worker in self.workers):
                return
            jobs = self.store.waiting()
            if not jobs:
                return
            for job in jobs:
                if job.gpus > self.capacity:
                    self._refuse(job)
            slots = [SlotView(w.index, w.free, self._gb(w), _family(w.studio.engine.loaded)) for w in self.workers]
            plan = assign([job for job in jobs if job.gpus <= self.capacity], slots, self._fits, self._model)
            for job, indexes in plan:
                group = [self.workers[index] for index in indexes]
                leader = group[0]
                claimed = self.store.claim(leader.name, [worker.device for worker in group], job.id)
                if claimed is None:  # stopped meanwhile, or another box's pool took it
                    continue
                flag = threading.Event()
                self._flags[job.id] = flag
                for worker in group:
                    worker.job, worker.group = claimed, (indexes if len(group) > 1 else None)
                thread = threading.Thread(target=self._execute, args=(group, claimed, flag), daemon=True,
                                          name=f"gpu-worker-{leader.index}")  # fmt: skip
                self._threads[job.id] = thread
                try:
                    thread.start()
                except RuntimeError:  # no thread to be had: the job waits again, the devices are free
                    log.exception("could not start a worker thread for job %s", job.id)
                    for worker in group:
                        worker.job = worker.group = None
                    self._flags.pop(job.id, None)
                    self._threads.pop(job.id, None)
                    self.store.requeue(job.id, worker=leader.name)
            if len(self._fitted) > 4096:
                self._fitted.clear()

    def _refuse(self, job: Job) -> None:
        """A job asking more GPUs than this pool has (I2V_DEVICES changed since it was queued): failed with words."""
        from messages import note

        studio = self.workers[0].studio
        if self.store.claim(self.workers[0].name, None, job.id) is None:
            return
        said = note("pool.too_many_gpus", gpus=job.gpus, have=self.capacity)
        self.store.finish(job.id, "failed", error={"code": said.code, "text": studio.say(said, job.language)},
                          error_kind="bad_input", worker=self.workers[0].name)  # fmt: skip

    def _execute(self, group: list[Worker], job: Job, cancel: threading.Event) -> None:
        leader = group[0]
        try:
            if len(group) > 1:  # the group's processes need the whole memory of every GPU of it
                for worker in group:
                    worker.studio.engine.unload()
            leader.run(job, cancel, [worker.device for worker in group])
            self._retain()
        except Exception:  # noqa: BLE001 - the worker lives on: the job says "internal error"
            log.exception("worker %d failed around job %s", leader.index, job.id)
            leader.fail(job)
        finally:
            with self._lock:
                for worker in group:
                    worker.job = worker.group = None
                self._flags.pop(job.id, None)
                self._threads.pop(job.id, None)
                self._asked.discard(job.id)

    def _gb(self, worker: Worker) -> float | None:
        """The memory the planner may count on for `worker`'s device: a free GPU's available memory
        now (its own loaded model counted as available), at most its I2V_DEVICES size; a CPU's size
        (None: no size, no planner)."""
        if not worker.device.startswith("cuda"):
            return worker.spec.gb
        if worker.free:
            from i2v.hardware import available_gb

            try:
                return worker.spec.capped(available_gb(worker.device))
            except Exception:  # noqa: BLE001 - a GPU that cannot say: its total, as below
                pass
        gpu = worker.studio.hardware.gpu_for(worker.device)
        return worker.spec.capped(gpu.total_gb if gpu else None)

    def _fits(self, job: Job, slot: SlotView) -> bool:
        """The planner's word on `job` on `slot` (measured families; every other job fits anywhere)."""
        if slot.gb is None:
            return True
        key = (job.id, slot.index, round(slot.gb))
        if key not in self._fitted:
            # a video across GPUs keeps every weight on each of them (no offloading): fitted so
            form = {**job.form, "memory_strategy": "none"} if job.gpus > 1 else job.form
            try:
                self._fitted[key] = self.workers[slot.index].studio.fits(form, slot.gb)
            except Exception:  # noqa: BLE001 - a model gone since, a bad form: its run says so
                self._fitted[key] = True
        return self._fitted[key]

    def _model(self, job: Job) -> str | None:
        try:
            return self.workers[0].studio.family(job.form["model"]).id
        except Exception:  # noqa: BLE001
            return None

    def _retain(self) -> None:
        """Retention (I2V_KEEP_DAYS, I2V_KEEP_GB): the oldest finished jobs go, with their videos."""
        if self.keep_days is None and self.keep_gb is None:
            return
        removed = self.store.remove_old(self.keep_days, self.keep_gb)
        if removed:
            log.info("retention removed %d finished job(s) and their videos", len(removed))


def _family(source) -> str | None:
    return source.family.id if source is not None else None
