"""Seconds per denoising step and peak GPU memory of the long-video families at their default sizes,
with real-size random weights in bfloat16, every weight on the GPU (no offload, no VAE tiling).

Speed and memory do not depend on weight values, so each family's pipeline is built at its
published size by bench/measure_memory.py's builders (no download) and called with its room's own
arguments and step hook (i2v/families/: call_kwargs, watch_steps): the run is the engine's run.
Families that end on a photo get one (Wan 2.1 FLF2V cannot run without); LTX-Video 0.9.5 gets a
keyframe in the middle as well, and Wan 2.1 VACE two reference images (portraits, half the video's
width: each adds a latent frame). FramePack denoises section by section (decoding each) and
SkyReels-V2 DF window by window, each with its step count starting over, so a row gives:
  seconds_per_step      median of step-to-step times within a section (the denoiser alone)
  section_seconds       each section's (window's) time: its steps, plus FramePack's decode of the one before
  encode_seconds        from the call to the denoiser's first step (text, photos, VAE encode)
  tail_seconds          after the last step (the last decode and post-processing)
  peak_gb, encode_peak_gb   the run's peak GPU memory, and its peak before the first step
  full_seconds          the run at the family's own step count: encode + sections + tail, each
                        section with the steps it would have at full length
  denoise_peak_gb, decode_peak_gb   with encode_peak_gb, the peak of each phase, for the memory planner
                        (bench/fit_memory.py): encode up to the denoiser's first call; denoise while it
                        runs; decode from a VAE decode until the denoiser runs again and to the end of
                        the call (FramePack decodes after every section and keeps the clip made so far
                        on the GPU); the peak counter is reset between phases
  denoise_seconds       from the denoiser's first call to its last step, less the decodes in between
With `--size` (any number) the family runs at those sizes instead of its default, and with
`--strategies` under each memory strategy (placed by i2v.placement as the engine does); `--tiled`
sizes run once more with VAE tiling.
One JSON line per run (and one per family for its weights), printed and appended to OUT/long_families.jsonl.

    python bench/long_families.py OUT_DIR                               # every family, 3 steps, default sizes
    python bench/long_families.py OUT_DIR --family framepack --steps 2
    python bench/long_families.py OUT_DIR --family framepack --steps 2 --size 480x832x73 --size 480x832x145 \
        --strategies none,group --tiled 480x832x145                     # the planner's sizes (docs/PERFORMANCE.md)
    python bench/long_families.py OUT_DIR --dry-run                     # configs and parameter counts only
    python bench/long_families.py OUT_DIR --check --family framepack    # one layer deep, small, on the CPU
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import measure_memory  # noqa: E402
from measure_memory import GiB, build, weights_gb  # noqa: E402

from i2v.placement import free_memory  # noqa: E402

FAMILIES = ["wan2.1-flf2v-14b-720p", "ltx-video-condition", "framepack", "skyreels-v2-df-1.3b-540p",
            "skyreels-v2-df-14b-540p", "ltx-video-long", "wan-vace-1.3b", "wan-vace-14b", "ltx-2"]  # fmt: skip
REFERENCES = 2  # a family that takes references gets this many subjects (each a latent frame more to denoise)


class StepClock:
    """Stands in for the engine's step watch (rooms set `total` and call `step`): the time of each step."""

    def __init__(self, cuda: bool):
        self.cuda, self.total, self.times = cuda, 0, []

    def step(self, done: int | None = None) -> None:
        if self.cuda:
            torch.cuda.synchronize()
        self.times.append(time.perf_counter())


class Phases:
    """The peak GPU memory of each phase of a call: the phase in hand is closed (its peak kept, the
    counter reset) when the next begins."""

    def __init__(self, cuda: bool):
        self.cuda, self.now, self.peaks = cuda, "encode", {}

    def enter(self, phase: str) -> None:
        if phase != self.now:
            self.close()
            self.now = phase

    def close(self) -> None:
        peak = 0.0
        if self.cuda:
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated() / GiB
            torch.cuda.reset_peak_memory_stats()
        self.peaks[self.now] = max(self.peaks.get(self.now, 0.0), peak)


def photo(height: int, width: int, seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8))


def run(pipe, family, height: int, width: int, num_frames: int, steps: int, cuda: bool, strategy: str = "none",
        tiling: bool = False) -> dict:  # fmt: skip
    """One call of the family's pipeline with its room's arguments (placed by `strategy`, with VAE
    `tiling` or not); its times and peaks."""
    from i2v.request import GenerationRequest

    knobs = GenerationRequest(image="photo.png", prompt="a cat turns its head", negative_prompt="blurry",
                              model=family.id, height=height, width=width, num_frames=num_frames, fps=family.fps,
                              num_inference_steps=steps, guidance_scale=family.guidance_scale, seed=0)  # fmt: skip
    first = photo(height, width, 0)
    last = photo(height, width, 1) if family.end_frame else None
    keyframes = [(num_frames // 2, photo(height, width, 2))] if family.keyframes else []
    references = [photo(height, width // 2, 3 + k) for k in range(REFERENCES)] if family.references else []
    extra = {"references": references} if family.references else {}  # fitted inside the video, as the engine does
    kwargs = family.call_kwargs(pipe, knobs, first, last, keyframes, **extra)
    clock = StepClock(cuda)
    restore = family.watch_steps(pipe, kwargs, clock)
    marks: dict[str, float] = {}
    phases = Phases(cuda)

    def first_call(module, args, call_kwargs):
        phases.enter("denoise")
        if "denoise_start" not in marks:
            marks["denoise_start"] = time.perf_counter()

    handle = pipe.transformer.register_forward_pre_hook(first_call, with_kwargs=True)
    decode, decodes = pipe.vae.decode, []

    def timed_decode(*args, **decode_kwargs):  # FramePack decodes after every section
        phases.enter("decode")
        started = time.perf_counter()
        out = decode(*args, **decode_kwargs)
        if cuda:
            torch.cuda.synchronize()
        decodes.append((started, time.perf_counter()))
        return out

    pipe.vae.decode = timed_decode
    if tiling:
        pipe.vae.enable_tiling()
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    baseline = torch.cuda.memory_allocated() / GiB if cuda else 0.0
    conditions = ["first", *(f"keyframe@{frame}" for frame, _ in keyframes), *(["last"] if last else []),
                  *(f"reference{k + 1}" for k in range(len(references)))]  # fmt: skip
    row = dict(family=family.id, height=height, width=width, num_frames=num_frames, steps=steps, strategy=strategy,
               tiling=tiling, conditions=conditions, baseline_gb=round(baseline, 3))  # fmt: skip
    started = time.perf_counter()
    try:
        frames = np.asarray(pipe(**kwargs).frames[0])
        phases.close()
        ended = time.perf_counter()
    except torch.OutOfMemoryError as exc:
        return {**row, "ok": False, "error": str(exc).splitlines()[0][:200]}
    finally:
        restore()
        handle.remove()
        del pipe.vae.decode
        if tiling:
            pipe.vae.disable_tiling()
    if list(frames.shape[:3]) != [num_frames, height, width]:  # the row would lie about what it timed
        raise RuntimeError(f"{family.id} made {list(frames.shape[:3])} frames x height x width, not "
                           f"{[num_frames, height, width]}")  # fmt: skip
    times = clock.times
    sections = len(times) // steps
    ends = [marks["denoise_start"]] + [times[(k + 1) * steps - 1] for k in range(sections)]
    section_seconds = [ends[k + 1] - ends[k] for k in range(sections)]
    within = [times[i] - times[i - 1] for i in range(1, len(times)) if i % steps]
    per_step = statistics.median(within) if within else float("nan")
    encode, tail = marks["denoise_start"] - started, ended - times[-1]
    decode_seconds = sum(end - start for start, end in decodes)
    inner_decodes = sum(end - start for start, end in decodes if end <= times[-1])
    full = encode + sum(section_seconds) + sections * (family.num_inference_steps - steps) * per_step + tail
    return {
        **row, "ok": True, "sections": sections, "seconds_per_step": round(per_step, 3),
        "first_step_seconds": round(times[0] - marks["denoise_start"], 3),
        "section_seconds": [round(s, 2) for s in section_seconds], "encode_seconds": round(encode, 2),
        "tail_seconds": round(tail, 2), "decode_seconds": round(decode_seconds, 2), "decode_calls": len(decodes),
        "denoise_seconds": round(times[-1] - marks["denoise_start"] - inner_decodes, 2),
        "run_seconds": round(ended - started, 2),
        "encode_peak_gb": round(phases.peaks["encode"], 3), "denoise_peak_gb": round(phases.peaks["denoise"], 3),
        "decode_peak_gb": round(phases.peaks.get("decode", 0.0), 3), "peak_gb": round(max(phases.peaks.values()), 3),
        "full_steps": family.num_inference_steps, "full_seconds": round(full, 1),
    }  # fmt: skip


def check_size(family) -> tuple[int, int, int]:
    """`--check`: two of the family's size multiples a side, and the fewest frames that take more than
    one section (FramePack) or window (SkyReels), so the section-by-section path runs too."""
    frames = {"framepack": 73, "skyreels-v2-df-1.3b-540p": 177, "skyreels-v2-df-14b-540p": 177,
              "ltx-video-long": 161}.get(family.id, 9)  # fmt: skip
    return 2 * family.size_multiple, 2 * family.size_multiple, frames


def dry_run(families: list[str]) -> None:
    """Each family's configs and parameter counts, its weights made on the meta device: nothing is allocated."""
    from accelerate import init_empty_weights

    from i2v.families import get_family

    for family_id in families:
        family = get_family(family_id)
        with init_empty_weights():  # parameters on "meta"; the schedulers' small tensors stay real
            components = measure_memory.BUILDERS[family_id]()
        parts = {}
        for name, component in components.items():
            if isinstance(component, torch.nn.Module):
                if hasattr(component, "tie_weights"):  # T5's shared embedding, tied after init as from_pretrained does
                    component.tie_weights()
                count = sum(p.numel() for p in component.parameters())
                config = getattr(component, "config", {})  # transformers' (its non-default keys) or diffusers'
                config = config.to_diff_dict() if hasattr(config, "to_diff_dict") else dict(config)
                parts[name] = dict(params_b=round(count / 1e9, 3), bf16_gb=round(count * 2 / GiB, 2), config=config)
        size = dict(height=family.height, width=family.width, num_frames=family.num_frames,
                    num_inference_steps=family.num_inference_steps)  # fmt: skip
        print(json.dumps({"family": family_id, "default": size, "components": parts}, default=str), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--family", action="append", choices=FAMILIES, help="default: all of them")
    parser.add_argument("--steps", type=int, default=3, help="denoising steps a section (at least 2)")
    parser.add_argument("--size", action="append", type=size_arg, metavar="HxWxF",
                        help="a size to run: height x width x frames (default: the family's own)")  # fmt: skip
    parser.add_argument("--tiled", action="append", type=size_arg, default=[], metavar="HxWxF",
                        help="a size to run again with VAE tiling")  # fmt: skip
    parser.add_argument("--strategies", default="none", help="memory strategies, in order (none,model,group,...)")
    parser.add_argument("--dry-run", action="store_true", help="print configs and parameter counts, allocate nothing")
    parser.add_argument("--check", action="store_true", help="one layer deep, small, on the CPU: try the path")
    args = parser.parse_args()
    families = args.family or FAMILIES
    if args.dry_run:
        return dry_run(families)
    cuda = not args.check
    if args.check:
        measure_memory.DEPTH = 1
    elif not torch.cuda.is_available():
        raise SystemExit("no GPU: use --check (CPU, one layer deep) or --dry-run")
    else:
        from i2v.placement import prepare_cuda

        prepare_cuda()  # the allocator the engine runs with
        torch.backends.cuda.matmul.allow_tf32 = True
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "long_families.jsonl"
    import diffusers

    where = dict(device=torch.cuda.get_device_name() if cuda else "cpu", torch=torch.__version__,
                 diffusers=diffusers.__version__, date=time.strftime("%Y-%m-%d"))  # fmt: skip

    def write(row: dict) -> None:
        print(json.dumps(row), flush=True)
        with results.open("a") as out:
            out.write(json.dumps(row) + "\n")

    for family_id in families:
        started = time.perf_counter()
        family, pipe = build(family_id, device="cuda" if cuda else "cpu")
        write(dict(family=family_id, kind="weights", weights_gb={k: round(v, 3) for k, v in weights_gb(pipe).items()},
                   build_seconds=round(time.perf_counter() - started, 1), **where))  # fmt: skip
        sizes = args.size or [(family.height, family.width, family.num_frames)]
        runs = [(size, False) for size in sizes] + [(size, True) for size in args.tiled]
        for strategy in args.strategies.split(","):
            if cuda:
                started = time.perf_counter()
                measure_memory.apply_strategy(pipe, strategy)
                placed = round(time.perf_counter() - started, 1)
            for size, tiling in runs:
                size = check_size(family) if args.check else size
                write({**run(pipe, family, *size, max(2, args.steps), cuda, strategy, tiling), **where,
                       **({"place_seconds": placed} if cuda else {})})  # fmt: skip
        if cuda:
            pipe.remove_all_hooks()
        del pipe
        free_memory(host=cuda)  # group offload's pinned copy too, before the next family's


def size_arg(text: str) -> tuple[int, int, int]:
    """'480x832x145' -> (480, 832, 145)."""
    height, width, frames = (int(part) for part in text.lower().split("x"))
    return height, width, frames


if __name__ == "__main__":
    main()
