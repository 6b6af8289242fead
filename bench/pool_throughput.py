"""Jobs per hour on N GPUs of one box against one GPU: issue #16's pool, measured the way the pool
runs jobs (one Python process, one thread per GPU, each GPU holding its own pipeline).

Every GPU gets the family's pipeline at its published size with the same random weights
(bench/measure_memory.py's builders: speed does not depend on weight values). Then N videos run one
after another on GPU 0, and N videos at once, one per GPU, each in its own thread (as the pool's
workers do), with the engine's own arguments and step hook (bench/long_families.py's `run`). Prints
one JSON line per way (and appends it to OUT/pool_throughput.jsonl):
  way ("one GPU" | "N GPUs"), gpus, videos, steps, wall_seconds, seconds_per_step (median of the
  videos'), jobs_per_hour (at `--steps`), full_jobs_per_hour (at the family's own step count,
  from each video's full_seconds)

    python bench/pool_throughput.py OUT --gpus 2 --size 480x832x81 --steps 3
    python bench/pool_throughput.py OUT --dry-run                              # arguments only
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from long_families import run, size_arg  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--family", default="wan2.1-i2v-14b-480p")
    parser.add_argument("--size", type=size_arg, default=(480, 832, 81), metavar="HxWxF")
    parser.add_argument("--gpus", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="denoising steps a video (at least 2)")
    parser.add_argument("--dry-run", action="store_true", help="check the arguments, allocate nothing")
    args = parser.parse_args()
    if args.dry_run:
        print(json.dumps({"family": args.family, "size": args.size, "gpus": args.gpus, "steps": args.steps}))
        return

    import measure_memory
    import torch

    from i2v.placement import prepare_cuda

    if torch.cuda.device_count() < args.gpus:
        sys.exit(f"{args.gpus} GPUs asked, {torch.cuda.device_count()} here")
    prepare_cuda()
    torch.backends.cuda.matmul.allow_tf32 = True
    pipes, family = [], None
    for index in range(args.gpus):
        torch.cuda.set_device(index)
        family, pipe = measure_memory.build(args.family, device=f"cuda:{index}")  # seeded: the same weights
        pipes.append(pipe)
    height, width, frames = args.size
    steps = max(2, args.steps)
    run(pipes[0], family, height, width, frames, 2, True)  # warm-up: the first call's kernels are not a job's

    def video(index: int, rows: list) -> None:
        torch.cuda.set_device(index)  # this thread's GPU (the current device is per thread)
        rows.append(run(pipes[index], family, height, width, frames, steps, True))

    where = dict(device=torch.cuda.get_device_name(0), torch=torch.__version__, family=family.id, height=height,
                 width=width, num_frames=frames, date=time.strftime("%Y-%m-%d"))  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    for way in ("one GPU", f"{args.gpus} GPUs"):
        rows: list = []
        started = time.perf_counter()
        if way == "one GPU":
            for _ in range(args.gpus):
                video(0, rows)
        else:
            threads = [threading.Thread(target=video, args=(index, rows)) for index in range(args.gpus)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        wall = time.perf_counter() - started
        if len(rows) != args.gpus or not all(row.get("ok") for row in rows):
            sys.exit(f"{way}: a video failed: {rows}")
        # the full-length videos' wall time: this way's wall, with each video's extra steps added once per GPU in turn
        extra = max(row["full_seconds"] - row["run_seconds"] for row in rows)
        per_gpu = args.gpus if way == "one GPU" else 1
        full_wall = wall + extra * per_gpu
        line = json.dumps({**where, "way": way, "gpus": 1 if way == "one GPU" else args.gpus, "videos": args.gpus,
                           "steps": steps, "wall_seconds": round(wall, 1),
                           "seconds_per_step": round(statistics.median(row["seconds_per_step"] for row in rows), 3),
                           "jobs_per_hour": round(args.gpus / wall * 3600, 1),
                           "full_steps": rows[0]["full_steps"], "full_jobs_per_hour": round(args.gpus / full_wall * 3600, 1),
                           "peak_gb": max(row["peak_gb"] for row in rows)})  # fmt: skip
        print(line, flush=True)
        with (args.out / "pool_throughput.jsonl").open("a") as out:
            out.write(line + "\n")


if __name__ == "__main__":
    main()
