"""LTX-Video 0.9.5's upscale x2 in latent space at full size, on a GPU: the first pass at the asked
size to latents, the latent upsampler, and the short second pass at twice the size, timed and with
their peak GPU memory, against one pass made at twice the size directly.

Random bf16 weights (speed and memory do not depend on their values): the pipeline from
bench/measure_memory.py's builder, the upsampler at its published size (0.9.7's config:
tests/test_latent_upscale.py's FULL_SIZE), run through the room's own `render_latent_upscaled`
with the room's call arguments, every weight on the GPU. One JSON line per run, printed and
appended to OUT/ltx_latent_upscale.jsonl.

    python bench/ltx_latent_upscale.py OUT_DIR [--frames 97] [--steps 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from long_families import StepClock, photo  # noqa: E402
from measure_memory import GiB, build  # noqa: E402

# LTXLatentUpsamplerModel as ltxv-spatial-upscaler-0.9.7 is converted (diffusers' convert_ltx_to_diffusers.py)
FULL_SIZE = dict(in_channels=128, mid_channels=512, num_blocks_per_stage=4, dims=3, spatial_upsample=True,
                 temporal_upsample=False)  # fmt: skip


class Clock(StepClock):
    """The step clock, standing in for the engine's step watch between the passes too."""

    def check_cancel(self) -> None:
        pass


def knobs_for(family, height, width, frames, steps):
    from i2v.request import GenerationRequest

    return GenerationRequest(image="photo.png", prompt="a cat turns its head", model=family.id, height=height,
                             width=width, num_frames=frames, fps=family.fps, num_inference_steps=steps,
                             guidance_scale=family.guidance_scale, seed=0)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--frames", type=int, default=97)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from diffusers.pipelines.ltx.modeling_latent_upsampler import LTXLatentUpsamplerModel

    family, pipe = build("ltx-video-condition")
    torch.manual_seed(0)
    upsampler = LTXLatentUpsamplerModel(**FULL_SIZE).to("cuda", torch.bfloat16)
    rows = []

    def kwargs_at(scale, steps):
        knobs = knobs_for(family, args.height * scale, args.width * scale, args.frames, steps)
        return family.call_kwargs(pipe, knobs, photo(knobs.height, knobs.width, 0), None, [])

    for kind in ("latent_x2", "direct_x2"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        clock = Clock(cuda=True)
        started = time.perf_counter()
        try:
            if kind == "latent_x2":
                first, second = kwargs_at(1, args.steps), kwargs_at(2, args.steps)
                family.watch_steps(pipe, first, clock)
                output = family.render_latent_upscaled(pipe, upsampler, first, second, clock)
            else:  # the same video made at twice the size in one pass of the family's steps
                direct = kwargs_at(2, args.steps)
                family.watch_steps(pipe, direct, clock)
                output = pipe(**direct)
            torch.cuda.synchronize()
            frames = output.frames[0]
            row = {"kind": kind, "ok": True, "shape": list(getattr(frames, "shape", [len(frames)])),
                   "seconds": round(time.perf_counter() - started, 2), "steps_timed": len(clock.times),
                   "step_times": [round(b - a, 3) for a, b in zip(clock.times, clock.times[1:])]}  # fmt: skip
        except torch.OutOfMemoryError as exc:
            row = {"kind": kind, "ok": False, "error": str(exc).splitlines()[0][:200]}
        row.update(height=args.height, width=args.width, num_frames=args.frames, steps=args.steps,
                   upscale_steps=family.latent_upscale_steps(), peak_gb=round(torch.cuda.max_memory_allocated() / GiB, 3),
                   device=torch.cuda.get_device_name(), torch=torch.__version__)  # fmt: skip
        print(json.dumps(row), flush=True)
        rows.append(row)
    with (args.out / "ltx_latent_upscale.jsonl").open("a") as file:
        file.writelines(json.dumps(row) + "\n" for row in rows)


if __name__ == "__main__":
    main()
