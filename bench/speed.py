"""Speed of each mode against plain diffusers, on one GPU, with real-size random-weight pipelines.

Speed does not depend on weight values, so each family is built at its published size with random
weights (bench/measure_memory.py's builders). Modes, each a row of JSON:
  plain    the pipeline called as its docs show (on the GPU, the family's steps and guidance)
  exact    the engine (VideoEngine.generate), speed exact
  cache    the engine, exact plus a FirstBlockCache that never skips (threshold 0): the step
           cache's overhead alone. Adaptive caches skip steps according to the weights, so random
           weights cannot time their speed-up: that stays the published figure.
  fp8      the engine with fp8 denoiser weights only (quantize fp8)
  fast     the engine, speed fast: fp8 + compiled repeated blocks (no step cache, see above)
  turbo    the engine, speed turbo: a random LoRA of the published rank in turbo's file name,
           fused, with fp8 and compile, the distilled steps and no CFG; run twice, end to end
Every run times a few denoising steps after the first (the first pays the compile warm-up, which
is reported on its own as `first_step_seconds`) and the VAE decode, and computes the full-length
seconds: encode + steps x seconds per step + decode. The MP4 writer is stubbed (no ffmpeg there).

    python bench/speed.py OUT --family wan2.1-i2v-14b-480p --modes plain,exact,cache,fast --cache-dir /tmp/cc
    python bench/speed.py OUT --family wan2.1-i2v-14b-480p --modes fast,turbo --cache-dir /tmp/cc --work /tmp/w
    python bench/speed.py OUT --family ltx-video --cpu-check     # the whole path on a CPU, tiny model, first
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure_memory import build, measure  # noqa: E402

import i2v.engine  # noqa: E402
from i2v.engine import VideoEngine  # noqa: E402
from i2v.families import resolve  # noqa: E402
from i2v.request import GenerationRequest  # noqa: E402

SIZES = {  # the published size of each family's demos
    "wan2.1-i2v-14b-480p": (480, 832, 81), "wan2.2-ti2v-5b": (704, 1280, 121), "ltx-video": (480, 704, 161),
    "i2vgen-xl": (512, 512, 16), "wan2.2-i2v-a14b": (480, 832, 81),
}  # fmt: skip


class RandomWeightsEngine(VideoEngine):
    """The product's engine, except that loading builds the pipeline with random weights."""

    turbo_lora_rank = 64

    first_call: float | None = None  # when the denoiser was first called in this run
    loaded_at: float = 0.0

    def load(self, source, strategy=None, quantize="none", compile=False, turbo=False):
        strategy = strategy or self.offload
        key = (source, strategy, quantize, compile, turbo)
        self.first_call = None
        if self._pipe is not None and self._pipe_key == key:
            self.loaded_at = time.perf_counter()
            return self._pipe
        self.unload()
        started = time.perf_counter()
        _, pipe = build(source.family.id)
        files = self._turbo_files(source) if turbo else []
        self.build_seconds = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        out = self.adopt(pipe, source, strategy, quantize, compile, turbo, files)
        torch.cuda.synchronize()
        self.prepare_seconds = round(time.perf_counter() - started, 1)  # fusing, fp8, compile setup (lazy)

        def first_call(module, args, kwargs):
            if self.first_call is None:
                torch.cuda.synchronize()
                self.first_call = time.perf_counter()

        for module in (getattr(out, "transformer", None), getattr(out, "unet", None)):
            if module is not None:
                module.register_forward_pre_hook(first_call, with_kwargs=True)
        torch.cuda.reset_peak_memory_stats()  # the run's peak, not the random-weight build's
        self.loaded_at = time.perf_counter()
        return out


def denoiser_shapes(family_id: str, tiny: bool):
    """The family's denoiser with no weights at all (the meta device): its layers' names and sizes."""
    if tiny:
        from i2v.families import get_family

        return get_family(family_id).tiny_components()["transformer"]
    import measure_memory

    with torch.device("meta"):
        return measure_memory.BUILDERS[family_id]()["transformer"]


def random_lora(denoiser, path: Path, rank: int) -> Path:
    """A random LoRA of `rank` on every linear layer of the denoiser's blocks, as LightX2V's are."""
    from safetensors.torch import save_file

    tensors = {}
    for name, module in denoiser.named_modules():
        if isinstance(module, torch.nn.Linear) and name.startswith(("blocks.", "transformer_blocks.")):
            tensors[f"transformer.{name}.lora_A.weight"] = torch.randn(rank, module.in_features, dtype=torch.bfloat16) * 0.01
            tensors[f"transformer.{name}.lora_B.weight"] = torch.zeros(module.out_features, rank, dtype=torch.bfloat16)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path))
    return path


def engine_run(engine, family, mode: str, height: int, width: int, frames: int, steps: int, full_steps: int,
               photo: Path) -> dict:  # fmt: skip
    marks: list[tuple[str, int, float]] = []

    def on_progress(update):
        torch.cuda.synchronize()
        marks.append((update.stage, update.step, time.perf_counter()))

    levers = {"exact": dict(speed="exact"), "fast-cache": dict(speed="fast"), "cache": dict(speed="exact", step_cache="first_block"),
              "fp8": dict(speed="exact", quantize="fp8"), "fast": dict(speed="fast", step_cache="none", compile=True),
              "turbo": dict(speed="turbo", compile=True)}[mode]  # fmt: skip
    request = GenerationRequest(image=photo, prompt="a cat turns its head", negative_prompt="blurry", model=family.id,
                                height=height, width=width, num_frames=frames, seed=0, memory_strategy="none",
                                num_inference_steps=None if mode == "turbo" else steps, **levers)  # fmt: skip
    started = time.perf_counter()
    result = engine.generate(request, on_progress=on_progress)
    total = time.perf_counter() - started
    steps_at = [t for stage, step, t in marks if stage == "denoising" and step > 0]
    encode_at = next(t for stage, _, t in marks if stage == "encoding")
    per_step = (steps_at[-1] - steps_at[0]) / (len(steps_at) - 1)
    encode = engine.first_call - engine.loaded_at
    decode = encode_at - steps_at[-1]
    full_steps = result.num_inference_steps if mode == "turbo" else full_steps
    return dict(
        family=family.id, mode=mode, height=height, width=width, num_frames=frames,
        num_inference_steps=result.num_inference_steps, guidance_scale=result.guidance_scale,
        seconds_per_step=round(per_step, 3), first_step_seconds=round(steps_at[0] - engine.first_call, 2),
        encode_seconds=round(encode, 2), decode_seconds=round(decode, 2), run_seconds=round(total, 2),
        full_steps=full_steps, full_seconds=round(encode + full_steps * per_step + decode, 1),
        levers=[{"lever": lv.lever, "applied": lv.applied, "reason": str(lv.reason) if lv.reason else None}
                for lv in result.levers],
        peak_gb=round(torch.cuda.max_memory_allocated() / 2**30, 2),  # after loading (see load)
        weights_gb=round(sum(p.numel() * p.element_size() for p in engine._pipe.transformer.parameters()) / 2**30, 2)
        if getattr(engine._pipe, "transformer", None) is not None else None,
    )  # fmt: skip


def _tiny_instead(out: Path) -> None:
    """--cpu-check: the tiny models instead of full-size ones, CUDA's clock calls as no-ops."""
    import measure_memory

    from i2v.families import get_family
    from i2v.tiny import make_tiny

    def tiny_build(family_id, device="cpu"):
        folder = out / "tiny" / family_id
        if not folder.exists():
            make_tiny(family_id, folder)
        family = get_family(family_id)
        pipe = family.pipeline_class().from_pretrained(str(folder))
        pipe.set_progress_bar_config(disable=True)
        return family, pipe

    globals()["build"] = tiny_build
    measure_memory.build = tiny_build
    torch.cuda.synchronize = lambda *a, **k: None
    torch.cuda.max_memory_allocated = lambda *a, **k: 0
    torch.cuda.reset_peak_memory_stats = lambda *a, **k: None
    torch.cuda.empty_cache = lambda *a, **k: None
    for family_id in SIZES:
        SIZES[family_id] = (32, 32, 9)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--family", required=True, choices=sorted(SIZES))
    parser.add_argument("--modes", default="plain,exact,cache,fp8,fast,turbo")
    parser.add_argument("--steps", type=int, default=3, help="denoising steps timed per run (the first is warm-up)")
    parser.add_argument("--full-steps", type=int, help="the steps a full run takes (default: the family's)")
    parser.add_argument("--cpu-check", action="store_true", help="try the whole path on a CPU with a tiny model")
    parser.add_argument("--cache-dir", type=Path, help="compiled kernels (default OUT/cc); a later run reuses them")
    parser.add_argument("--work", type=Path, help="where the photo and turbo's random LoRA go (default OUT)")
    parser.add_argument("--fp8-everywhere", action="store_true", help="fp8 for every bf16 linear layer, not the blocks' only")
    args = parser.parse_args()
    device = "cpu" if args.cpu_check else "cuda"
    if args.fp8_everywhere:
        import re

        from i2v import speed as product_speed

        product_speed.BLOCK_LAYERS = re.compile(r"")
    if args.cpu_check:
        _tiny_instead(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "speed_runs.jsonl"
    i2v.engine.write_mp4 = lambda frames, path, fps, metadata: None  # no ffmpeg on the GPU machine
    import functools

    import diffusers

    # mode "cache": a FirstBlockCache that never skips, so only its overhead is timed
    diffusers.FirstBlockCacheConfig = functools.partial(diffusers.FirstBlockCacheConfig, threshold=0.0)
    torch.backends.cuda.matmul.allow_tf32 = True
    source = resolve(args.family)
    family = source.family
    height, width, frames = SIZES[args.family]
    full_steps = args.full_steps or family.num_inference_steps
    work = args.work or args.out
    work.mkdir(parents=True, exist_ok=True)
    photo = work / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)).save(photo)
    lora_dir = work / "loras"
    engine = RandomWeightsEngine(work / "videos", device=device, lora_dir=lora_dir, cache_dir=args.cache_dir or args.out / "cc")

    def write(row):
        row.update(device=torch.cuda.get_device_name() if device == "cuda" else "cpu", torch=torch.__version__,
                   fp8_layers="every bf16 linear" if args.fp8_everywhere else "the blocks'")
        print(json.dumps(row), flush=True)
        with results.open("a") as out:
            out.write(json.dumps(row) + "\n")

    for mode in args.modes.split(","):
        torch.cuda.reset_peak_memory_stats()
        if mode == "plain":
            engine.unload()
            started = time.perf_counter()
            _, pipe = build(args.family)
            build_seconds = time.perf_counter() - started
            row = measure(pipe, family, height, width, frames, args.steps, "none", False)
            row.update(mode="plain", build_seconds=round(build_seconds, 1),
                       full_seconds=round(row["encode_seconds"] + full_steps * row["seconds_per_step"]
                                          + row["decode_seconds"], 1))  # fmt: skip
            write(row)
            del pipe
            gc.collect()
            torch.cuda.empty_cache()
            continue
        if mode == "turbo":
            from i2v.speed import turbo_table

            turbo = turbo_table().get(args.family)
            if turbo is None or turbo.kind != "lora":
                write(dict(family=args.family, mode="turbo", skipped="no turbo LoRA configured for this family"))
                continue
            for spec in (turbo.lora, turbo.lora_2):
                if spec and not (lora_dir / spec.split("::")[1]).exists():
                    random_lora(denoiser_shapes(args.family, args.cpu_check), lora_dir / spec.split("::")[1],
                                RandomWeightsEngine.turbo_lora_rank)  # fmt: skip
        runs = 2 if mode == "turbo" else 1  # turbo's second run: end to end, warmed up
        for attempt in range(runs):
            row = engine_run(engine, family, mode, height, width, frames, args.steps, full_steps, photo)
            row.update(attempt=attempt + 1, build_seconds=getattr(engine, "build_seconds", None),
                       prepare_seconds=getattr(engine, "prepare_seconds", None))  # fmt: skip
            write(row)
    engine.unload()


if __name__ == "__main__":
    main()
