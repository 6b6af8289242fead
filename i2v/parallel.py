"""One video across several GPUs: diffusers' context parallelism, one process per GPU.

`launch` starts one process of this same Python per device (`python -m i2v.parallel`), with the
environment torchrun gives its workers (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK),
the way diffusers documents context parallelism. Each process (a *rank*) joins the group (NCCL on
CUDA GPUs, gloo on the CPU), builds a VideoEngine on its device and runs `generate` on the same
request: the same seed gives every rank the same latents, and diffusers splits the transformer's
sequence between them (`parallelize`: Ulysses attention; each GPU still holds every weight). Every
rank renders; rank 0 alone interpolates, upscales and writes the video, and sends the result back.

How the parent talks to a rank: its stdin carries the job (one JSON line), then "cancel" (rank 0
only); a pipe of its own carries its reports (JSON lines: progress from rank 0, the result, or an
error with its message id and params); its stdout and stderr carry its log, which the parent logs
as its own ("rank 1 (cuda:1): ..."). A rank whose stdin closes (the parent is gone) exits at once.

Stopping: rank 0 reads the parent's Stop, and every time a rank asks whether to stop (each step)
rank 0's answer is broadcast (`GroupCancel`), so all ranks raise Cancelled at the same step; one
that stopped alone would leave the others waiting in a collective forever. A rank that dies (kill
-9, the OOM killer) makes `launch` kill the others, their whole process groups, and raise RankLost;
no process outlives `launch`, also when the calling thread is interrupted.

The engine asks `current_group` whether it runs inside a group; this module reads and writes the
environment only to start ranks and, in a rank, to join its group. It knows nothing about the studio.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from messages import MessageError, note

from . import errors
from .errors import Cancelled, I2VError, InvalidInput, RankLost
from .progress import CancelFlag, OnProgress, Progress
from .request import MAX_SEED, GenerationRequest, VideoResult

log = logging.getLogger(__name__)

CANCEL_GRACE_S = 300.0  # a Stop the ranks have not obeyed by then (a long load, say): they are killed
ERROR_GRACE_S = 10.0  # after one rank's error, how long the others may take to end on their own


# ---------------------------------------------------------------------- inside a rank
@dataclass(frozen=True)
class Group:
    """The group this process is one rank of: its rank, how many there are, and their devices (in
    rank order; empty when the group was not started by `launch`, a torchrun bench say)."""

    rank: int
    size: int
    devices: tuple[str, ...] = ()

    @property
    def leads(self) -> bool:
        """Rank 0: the one that finishes and writes the video."""
        return self.rank == 0


_joined_devices: tuple[str, ...] = ()  # set by `join` in a rank: the group's devices, for its words


def current_group() -> Group | None:
    """The group this process is a rank of (torch.distributed initialised, more than one rank), or None."""
    if "torch" not in sys.modules:  # a process that never imported torch has joined no group
        return None
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    return Group(dist.get_rank(), dist.get_world_size(), _joined_devices)


def join(device: str, rank: int, size: int, devices: tuple[str, ...] = ()) -> Group:
    """Join the group of `size` ranks as `rank` on `device` (MASTER_ADDR and MASTER_PORT in the
    environment): NCCL on a CUDA GPU, gloo on the CPU."""
    global _joined_devices
    import torch
    import torch.distributed as dist

    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))  # before the group: NCCL and diffusers' mesh use it
        dist.init_process_group("nccl", rank=rank, world_size=size, device_id=torch.device(device))
    else:
        # diffusers 0.42.1's `_resolve_parallel_config` places rank r on accelerator r % device_count(),
        # a division by zero where there is none: a CPU rank's one device is itself. CPU ranks only
        # (tests and CPU boxes); a GPU rank keeps torch's count.
        torch.accelerator.device_count = lambda: 1
        dist.init_process_group("gloo", rank=rank, world_size=size)
    _joined_devices = tuple(devices)
    return Group(rank, size, _joined_devices)


def joined(checked):
    """A checked request and the group it runs in: None for one GPU; for `gpus` > 1, this process
    must be one rank of a group of that size (`launch` starts them: one engine alone cannot use
    several GPUs), and the result says where it ran."""
    gpus = checked.knobs.gpus
    group = current_group()
    if gpus == 1 and group is None:
        return checked, None
    if group is None:
        raise InvalidInput("parallel.needs_launch", gpus=gpus)
    if group.size != gpus:
        raise InvalidInput("parallel.group_size", gpus=gpus, size=group.size)
    devices = ", ".join(group.devices) if group.devices else f"{group.size} processes"
    return checked.with_(note("parallel.ran", gpus=gpus, devices=devices)), group


HEAD_KEYS = ("num_attention_heads", "audio_num_attention_heads")  # a transformer config's head counts


def video_tokens(family, height: int, width: int, num_frames: int) -> int:
    """The tokens of one call's latent video, which context parallelism splits between the GPUs: its
    latent frames (the family's frame step is its VAE's temporal factor) times its latent grid (the
    size multiple is the VAE's spatial factor times the transformer's patch)."""
    frames = (num_frames - family.frame_offset) // family.frame_step + 1 if family.frame_step > 1 else num_frames
    return frames * (height // family.size_multiple) * (width // family.size_multiple)


@dataclass(frozen=True)
class Split:
    """How a pipeline's transformers are split across `group`: plain Ulysses attention (what
    bench/context_parallel.py measured), or, where the GPUs do not divide the transformer's heads,
    diffusers' "Ulysses anything" (`anything`), which pads them. (Tokens the GPUs do not divide
    the check step refuses: see checks.py's `_across_gpus`.)"""

    group: Group
    anything: bool = False


def split_for(checked) -> Split | None:
    """How this process splits the checked request's transformers: None outside a group; plain
    Ulysses when the GPUs divide the transformer's heads (every head count: LTX-2-like models have a
    second stream), else Ulysses anything (also when the config cannot be read: it takes any count)."""
    group = current_group()
    if group is None:
        return None
    config = checked.source.component_config("transformer") or {}
    heads = [config[key] for key in HEAD_KEYS if config.get(key)]
    return Split(group, anything=not heads or any(count % group.size for count in heads))


def parallelize(pipe, split: Split) -> None:
    """Split every transformer of `pipe` (Wan 2.2 A14B has two) across the group with diffusers'
    context parallelism: attention on the `native` backend (PyTorch SDPA, which diffusers can
    split), then `enable_parallelism` with Ulysses attention, which splits the video's tokens for
    the layers around attention and the heads inside it. (Ring attention needs a backend that
    returns the softmax's log-sum-exp, which SDPA does not.)"""
    from diffusers import ContextParallelConfig

    for name in ("transformer", "transformer_2"):
        transformer = getattr(pipe, name, None)
        if transformer is None:
            continue
        transformer.set_attention_backend("native")
        transformer.enable_parallelism(config=ContextParallelConfig(ulysses_degree=split.group.size,
                                                                    ulysses_anything=split.anything))  # fmt: skip


class GroupCancel:
    """A rank's cancel flag: rank 0's own (the parent's Stop), broadcast to every rank each time it
    is read, so that every rank sees the same answer at the same step. Every rank must read it
    equally often: the engine reads it at each step and after each render, on every rank. After
    the render rank 0 reads its own flag alone (`own`)."""

    def __init__(self, local: threading.Event, device: str):
        self.local, self.device = local, device

    def is_set(self) -> bool:
        import torch
        import torch.distributed as dist

        flag = torch.tensor([1 if self.local.is_set() else 0], dtype=torch.int32, device=self.device)
        dist.broadcast(flag, src=0)
        return bool(flag.item())


def own(cancel: CancelFlag | None) -> CancelFlag | None:
    """The flag rank 0 reads once the other ranks are done (post-processing, export): its own, no collective."""
    return cancel.local if isinstance(cancel, GroupCancel) else cancel


def main() -> int:
    """A rank (`python -m i2v.parallel --report-fd N`, started by `launch`): read the job from stdin,
    join the group, generate, report on the pipe."""
    rank, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    report_fd = int(sys.argv[sys.argv.index("--report-fd") + 1])
    reports = os.fdopen(report_fd, "w", buffering=1, encoding="utf-8")
    job = json.loads(sys.stdin.readline())
    level = job.get("log_level", logging.INFO)
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s", force=True)
    _quiet_libraries(level)
    local = threading.Event()
    threading.Thread(target=_listen, args=(local,), daemon=True, name="parent").start()
    lock = threading.Lock()

    def send(message: dict) -> None:
        with lock:
            reports.write(json.dumps(message, default=_jsonable) + "\n")

    device, devices = job["device"], tuple(job["devices"])
    code = 0
    try:
        join(device, rank, size, devices)
        from .engine import VideoEngine

        engine = VideoEngine(device=device, **job["engine_options"])
        request = GenerationRequest.model_validate(job["request"])
        on_progress = (lambda progress: send({"progress": asdict(progress)})) if rank == 0 else None
        result = engine.generate(request, on_progress=on_progress, cancel=GroupCancel(local, device),
                                 out_path=job.get("out_path"))  # fmt: skip
        if result is not None:
            send({"result": result.model_dump(mode="json")})
    except MessageError as exc:
        code = 1
        log.info("rank %d stops: %s", rank, exc)
        send({"error": {"kind": type(exc).__name__, "code": exc.code, "params": exc.message.params}})
    except BaseException as exc:  # noqa: BLE001 - a bug or a library's failure: logged whole, said by its type
        code = 1
        log.exception("rank %d failed", rank)
        send({"error": {"kind": type(exc).__name__, "code": None, "params": {}}})
    reports.flush()
    if code == 0:
        import torch.distributed as dist

        dist.destroy_process_group()  # every rank is past its last collective
    sys.stderr.flush()
    os._exit(code)  # no teardown that could wait on a rank that is gone (NCCL's, atexit's)


def _listen(local: threading.Event) -> None:
    """The parent's words on stdin: "cancel" (rank 0 stops the group at the next step). End of input
    means the parent is gone: nobody wants this video, so the rank ends at once."""
    for line in sys.stdin:
        if line.strip() == "cancel":
            local.set()
    os._exit(3)


def _jsonable(value):
    """Message params and results as JSON: a Message as its code and params, anything else (a path) as its text."""
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return str(value)


def _quiet_libraries(level: int) -> None:
    """No progress bars in a rank's log (they are a terminal's); when the parent logs less than INFO, the
    libraries' warnings (diffusers calls context parallelism experimental) are left out too."""
    import warnings

    try:
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging

        diffusers_logging.disable_progress_bar()
        transformers_logging.disable_progress_bar()
        if level > logging.INFO:
            diffusers_logging.set_verbosity_error()
            transformers_logging.set_verbosity_error()
    except ImportError:
        pass
    if level > logging.INFO:
        warnings.filterwarnings("ignore")
        for name in ("diffusers", "transformers", "huggingface_hub", "torchao", "torch"):
            logging.getLogger(name).setLevel(logging.ERROR)


# ---------------------------------------------------------------------- the parent
@dataclass
class _Rank:
    index: int
    device: str
    process: subprocess.Popen
    reports: threading.Thread
    log: threading.Thread
    ended: bool = False  # exited, and its reports read to the end
    said: bool = False  # it sent a result or an error before it ended


def launch(request: GenerationRequest, devices: list[str], *, engine_options: dict, on_progress: OnProgress | None = None,
           cancel: CancelFlag | None = None, out_path: str | Path | None = None,
           on_start: Callable[[list[int]], None] | None = None) -> VideoResult:  # fmt: skip
    """Make the video of `request` (its `gpus` > 1) across `devices` (one per GPU, "cuda:K", or
    "cpu" for tests), one process each, and return its result. `engine_options`: VideoEngine's
    keyword arguments but the device (output_dir, offload, lora_dir, cache_dir, upscaler_dir,
    interpolator_dir, runs_once). `on_progress` hears rank 0's reports (in this thread); `cancel`
    stops every rank at the same step (Cancelled); `out_path` names the file (default: a new name in
    the output folder); `on_start` is given the ranks' process ids once they run.
    Raises the first error a rank reports (the same class, id and params), RankLost when a rank died
    without a word, and I2VError for a rank's failure that is not one of ours. The request is checked
    here first: a refusal starts no process."""
    from .checks import check

    if request.gpus != len(devices) or len(set(devices) - {"cpu"}) != len([d for d in devices if d != "cpu"]):
        raise InvalidInput("parallel.devices", gpus=request.gpus, count=len(devices), devices=", ".join(devices) or "none")
    if request.seed is None:  # every rank must draw the same latents: the seed is chosen here, once
        request = request.model_copy(update={"seed": secrets.randbelow(MAX_SEED + 1)})
    check(request)  # before any process: the refusals of gpus (a family without context parallelism, ...)
    job = {"request": request.model_dump(mode="json"), "devices": list(devices),
           "engine_options": {key: (str(value) if isinstance(value, Path) else value)
                              for key, value in engine_options.items() if key != "device"},  # each rank's own
           "out_path": str(out_path) if out_path else None,
           "log_level": log.getEffectiveLevel()}  # fmt: skip
    events: queue.Queue = queue.Queue()
    ranks: list[_Rank] = []
    log.info("launching %d processes for one video on %s", len(devices), ", ".join(devices))
    try:
        port = _free_port()
        for index, device in enumerate(devices):
            ranks.append(_start(index, device, len(devices), port, job, events))
        if on_start is not None:
            on_start([rank.process.pid for rank in ranks])
        return _watch(ranks, events, on_progress, cancel)
    finally:
        _end(ranks)


def _start(index: int, device: str, size: int, port: int, job: dict, events: queue.Queue) -> _Rank:
    """Start rank `index` on `device`, hand it the job, and read its reports and log in threads."""
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(index),
               WORLD_SIZE=str(size), LOCAL_RANK=str(index), LOCAL_WORLD_SIZE=str(size))  # fmt: skip
    env.setdefault("OMP_NUM_THREADS", "1")  # as torchrun does for several processes a box
    env["PYTHONUNBUFFERED"] = "1"
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # a CPU rank on a GPU box: torch must not pick the GPU for its mesh
    read_end, write_end = os.pipe()
    try:
        process = subprocess.Popen([sys.executable, "-m", "i2v.parallel", "--report-fd", str(write_end)],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   pass_fds=(write_end,), env=env, start_new_session=True)  # fmt: skip
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    process.stdin.write(json.dumps({**job, "device": device}).encode() + b"\n")
    process.stdin.flush()
    reports = threading.Thread(target=_read_reports, args=(index, os.fdopen(read_end, "rb"), events), daemon=True,
                               name=f"rank {index} reports")  # fmt: skip
    logs = threading.Thread(target=_relay_log, args=(index, device, process.stdout), daemon=True,
                            name=f"rank {index} log")  # fmt: skip
    reports.start()
    logs.start()
    return _Rank(index, device, process, reports, logs)


def _watch(ranks: list[_Rank], events: queue.Queue, on_progress: OnProgress | None,
           cancel: CancelFlag | None) -> VideoResult:  # fmt: skip
    """Hear the ranks until the video is made, a rank fails or dies, or a Stop is obeyed."""
    result: VideoResult | None = None
    result_at = failed_at = 0.0
    failure: BaseException | None = None
    stop_sent: float | None = None
    while True:
        try:
            index, message = events.get(timeout=0.2)
        except queue.Empty:
            index, message = None, None
        if message is not None:
            ranks[index].said = ranks[index].said or "progress" not in message
            if "progress" in message and on_progress is not None and failure is None:
                on_progress(Progress(**message["progress"]))
            elif "result" in message:
                result, result_at = VideoResult.model_validate(message["result"]), time.monotonic()
            elif "error" in message and failure is None:
                failure, failed_at = _error(message["error"], ranks[index]), time.monotonic()
        for rank in ranks:
            if not rank.ended and rank.process.poll() is not None:
                rank.reports.join(timeout=5)  # what it said before it ended is queued before its end counts
                rank.ended = True
        if result is not None:  # made: the ranks leave their group on their own, or `launch` ends them
            if all(rank.ended for rank in ranks) or time.monotonic() - result_at > ERROR_GRACE_S:
                return result
            continue
        # A rank that died without a word (kill -9, the OOM killer) is the cause of what the others
        # then report (a collective that lost its peer), so it is said first.
        lost = next((rank for rank in ranks if rank.ended and not rank.said and rank.process.returncode != 0), None)
        consequence = failure is None or getattr(failure, "code", None) == "parallel.rank_failed"
        if lost is not None and consequence and events.empty():
            raise RankLost("parallel.rank_lost", rank=lost.index, device=lost.device, size=len(ranks),
                           how=_how(lost.process.returncode))  # fmt: skip
        if all(rank.ended for rank in ranks) and events.empty():
            if failure is not None:
                raise failure
            raise RankLost("parallel.rank_lost", rank=0, device=ranks[0].device, size=len(ranks),
                           how=_how(ranks[0].process.returncode))  # fmt: skip
        now = time.monotonic()
        if failure is not None and now - failed_at > ERROR_GRACE_S:  # the others wait in a collective: end them
            raise failure
        if cancel is not None and cancel.is_set() and stop_sent is None:
            stop_sent = now
            log.info("stopping the video across %d GPUs at the next step", len(ranks))
            _tell(ranks[0], "cancel")
        if stop_sent is not None and now - stop_sent > CANCEL_GRACE_S:
            raise Cancelled("run.cancelled")


def _error(error: dict, rank: _Rank) -> BaseException:
    """A rank's reported error as the parent raises it: the same class of ours, id and params."""
    kind, code, params = error["kind"], error.get("code"), error.get("params") or {}
    if code is None:
        return I2VError("parallel.rank_failed", rank=rank.index, device=rank.device, error=kind)
    cls = getattr(errors, kind, None)
    if not (isinstance(cls, type) and issubclass(cls, MessageError)):
        cls = I2VError
    return cls(code, **params)


def _how(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


def _tell(rank: _Rank, word: str) -> None:
    try:
        rank.process.stdin.write(word.encode() + b"\n")
        rank.process.stdin.flush()
    except (BrokenPipeError, OSError):  # it ended already: its end is heard in the loop
        pass


def _end(ranks: list[_Rank]) -> None:
    """Every rank gone: the process group of each that has not ended (ffmpeg, compile workers
    included) killed, then waited for. Only a rank not yet reaped is killed by its group id: until
    it is reaped, that id cannot belong to anyone else."""
    for rank in ranks:
        if rank.process.returncode is None:
            try:
                os.killpg(rank.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for rank in ranks:
        try:
            rank.process.wait(timeout=30)
        except subprocess.TimeoutExpired:  # unkillable (stuck in the kernel): said, not hidden
            log.error("rank %d (pid %d) did not end after SIGKILL", rank.index, rank.process.pid)
        for stream in (rank.process.stdin, rank.process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        rank.reports.join(timeout=5)
        rank.log.join(timeout=5)


def _read_reports(index: int, stream, events: queue.Queue) -> None:
    with stream:
        for line in stream:
            try:
                events.put((index, json.loads(line)))
            except json.JSONDecodeError:
                log.warning("rank %d sent a report that is not JSON: %r", index, line[:200])


_LEVELS = {name: getattr(logging, name) for name in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")}


def _relay_log(index: int, device: str, stream) -> None:
    """A rank's log lines as this process's, at their level (a traceback's lines at its first's)."""
    level = logging.INFO
    for raw in stream:
        line = raw.decode("utf-8", "replace").rstrip()
        if not line:
            continue
        word, _, rest = line.partition(" ")
        if word in _LEVELS:
            level, line = _LEVELS[word], rest
        log.log(level, "rank %d (%s): %s", index, device, line)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


if __name__ == "__main__":
    # Run as a module the file is `__main__`; the engine imports `i2v.parallel`: one copy of its state.
    from i2v.parallel import main as _main

    sys.exit(_main())
