"""Seconds per denoising step of one video across N GPUs with diffusers' context parallelism
(`ContextParallelConfig`, Ulysses attention), against the same video on one GPU: issue #16's
measurement, taken before the job worker learns to launch it.

Launched the way diffusers documents it, one process per GPU (torchrun); every rank builds the
family's pipeline at its published size with the same random weights (bench/measure_memory.py's
builders, seeded alike: speed does not depend on weight values) and runs the same call, with the
engine's own arguments and step hook (bench/long_families.py's `run`). With more than one process
the transformer's attention runs on the `native` backend (PyTorch SDPA, which diffusers can split
across ranks) and `enable_parallelism(ContextParallelConfig(ulysses_degree=N))` shards the sequence.
Rank 0 prints one JSON line per size (and appends it to OUT/context_parallel.jsonl):
  gpus, family, height, width, num_frames, steps, seconds_per_step (median within the call),
  peak_gb (rank 0's), run_seconds, full_seconds (at the family's own step count)

    torchrun --nproc_per_node 2 bench/context_parallel.py OUT --size 480x832x81 --size 720x1280x81
    torchrun --nproc_per_node 1 bench/context_parallel.py OUT --size 480x832x81        # the one-GPU baseline
    python bench/context_parallel.py OUT --dry-run                                      # arguments only
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from long_families import run, size_arg  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--family", default="wan2.1-i2v-14b-480p")
    parser.add_argument("--size", action="append", type=size_arg, metavar="HxWxF", help="default: 480x832x81")
    parser.add_argument("--steps", type=int, default=3, help="denoising steps a call (at least 2)")
    parser.add_argument("--ring", action="store_true", help="ring attention instead of Ulysses")
    parser.add_argument("--dry-run", action="store_true", help="check the arguments, allocate nothing")
    args = parser.parse_args()
    sizes = args.size or [(480, 832, 81)]
    if args.dry_run:
        print(json.dumps({"family": args.family, "sizes": sizes, "steps": args.steps,
                          "world_size": int(os.environ.get("WORLD_SIZE", "1"))}))  # fmt: skip
        return

    import measure_memory
    import torch
    import torch.distributed as dist

    from i2v.placement import prepare_cuda

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(local)
    if world > 1:
        dist.init_process_group("nccl", device_id=torch.device("cuda", local))
    prepare_cuda()
    torch.backends.cuda.matmul.allow_tf32 = True
    started = time.perf_counter()
    family, pipe = measure_memory.build(args.family)  # seeded: every rank holds the same weights
    built = round(time.perf_counter() - started, 1)
    if world > 1:
        from diffusers import ContextParallelConfig

        pipe.transformer.set_attention_backend("native")
        degree = {"ring_degree": world} if args.ring else {"ulysses_degree": world}
        pipe.transformer.enable_parallelism(config=ContextParallelConfig(**degree))
    import diffusers

    where = dict(device=torch.cuda.get_device_name(), torch=torch.__version__, diffusers=diffusers.__version__,
                 date=time.strftime("%Y-%m-%d"), gpus=world, attention="ring" if args.ring and world > 1 else
                 "ulysses" if world > 1 else "one GPU", build_seconds=built)  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    for height, width, frames in sizes:
        row = run(pipe, family, height, width, frames, max(2, args.steps), True)
        if world > 1:
            dist.barrier()
        if rank == 0:
            line = json.dumps({**row, **where})
            print(line, flush=True)
            with (args.out / "context_parallel.jsonl").open("a") as out:
                out.write(line + "\n")
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
