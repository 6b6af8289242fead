"""Seconds per denoising step of one family's real-size random-weight pipeline, eager and compiled
in a few ways, to choose how `speed` fast compiles it. Warm-up (the first step) is reported apart.

    python bench/compile_modes.py OUT --family i2vgen-xl --modes eager,default,reduce-overhead
    (modes: eager, default, reduce-overhead, max-autotune-no-cudagraphs, channels-last, cudnn-benchmark,
     tuned: fused q/k/v projections and inductor's conv/tuning flags from diffusers' "accelerate
     inference" guide, compiled in the default mode; channels-last fails on a UNet with 3D convs)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch._inductor.config

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from measure_memory import build, measure  # noqa: E402
from speed import SIZES  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--family", required=True, choices=sorted(SIZES))
    parser.add_argument("--modes", default="eager,default,reduce-overhead")
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    height, width, frames = SIZES[args.family]
    for mode in args.modes.split(","):
        family, pipe = build(args.family)
        denoiser = getattr(pipe, "transformer", None) or pipe.unet
        torch.backends.cudnn.benchmark = mode == "cudnn-benchmark"
        if mode == "channels-last":
            denoiser.to(memory_format=torch.channels_last)
        if mode == "tuned":
            denoiser.fuse_qkv_projections()
            inductor = torch._inductor.config
            inductor.conv_1x1_as_mm = True
            inductor.coordinate_descent_tuning = True
            inductor.epilogue_fusion = False
            inductor.coordinate_descent_check_all_directions = True
        if mode in ("default", "channels-last", "cudnn-benchmark", "tuned"):
            denoiser.compile()
        elif mode != "eager":
            denoiser.compile(mode=mode)
        row = measure(pipe, family, height, width, frames, args.steps, "none", False)
        row.update(compile_mode=mode, device=torch.cuda.get_device_name(), torch=torch.__version__)
        print(json.dumps(row), flush=True)
        with (args.out / "compile_modes.jsonl").open("a") as out:
            out.write(json.dumps(row) + "\n")
        del pipe, denoiser
        torch._dynamo.reset()
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
