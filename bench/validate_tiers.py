"""Emulate smaller cards on a big GPU and check the planner's picks, and the engine's OOM recovery.

For each tier in configs/presets.toml: cap this process's GPU memory to the tier's size with
torch.cuda.set_per_process_memory_fraction, build the family the planner picks at real size with
random weights, place it with the strategy it picked, run it (2 steps: the peak does not depend on
the count), and compare the measured peak with the estimate. Then, through VideoEngine:
  - a real out-of-memory: Wan 2.2 TI2V 5B all on the GPU at 704x1280x121 under a 30 GB cap (the
    untiled decode needs ~32 GB) must step down to VAE tiling and finish;
  - the same under a 16 GB cap fails twice and must end in a clear error;
  - an injected out-of-memory at the first step must be retried;
and after each, GPU memory must be back where it was.

    python bench/validate_tiers.py OUT_DIR
"""

from __future__ import annotations

import gc
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure_memory import build, measure  # noqa: E402

from i2v.engine import VideoEngine  # noqa: E402
from i2v.placement import place  # noqa: E402  (the engine's own placement)
from i2v.errors import OutOfMemory  # noqa: E402
from i2v.memory import pick, presets  # noqa: E402
from i2v.request import GenerationRequest  # noqa: E402

GiB = 2**30
BUILD_AS = {"wan2.1-i2v-14b-720p": "wan2.1-i2v-14b-480p"}  # the same weights


def cap(gb: float | None) -> None:
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(1.0 if gb is None else min(1.0, gb * GiB / total))


def allocated() -> float:
    gc.collect()
    torch.cuda.empty_cache()
    return round(torch.cuda.memory_allocated() / GiB, 3)


def validate_tier(tier_gb: int) -> dict:
    chosen = pick(tier_gb, gpu_name=torch.cuda.get_device_name())
    if chosen is None:
        return {"tier_gb": tier_gb, "preset": None}
    s = chosen.shape
    family, pipe = build(BUILD_AS.get(s.family, s.family))  # built on the GPU uncapped: it is only fast there
    if s.memory_strategy != "none":
        pipe.to("cpu")
    gc.collect()
    torch.cuda.empty_cache()
    cap(tier_gb)
    try:
        place(pipe, s.memory_strategy, "cuda")
        row = measure(pipe, family, s.height, s.width, s.num_frames, 2, s.memory_strategy, s.vae_tiling)
    finally:
        pipe = None
        gc.collect()
        torch.cuda.empty_cache()
        cap(None)
    row.update(tier_gb=tier_gb, family=s.family, estimated_peak_gb=chosen.peak_gb, estimated_seconds_40_steps=chosen.seconds)
    if row.get("ok"):
        row["error_pct"] = round(100 * (chosen.peak_gb - row["peak_gb"]) / row["peak_gb"], 1)
    return row


class RandomWeightsEngine(VideoEngine):
    """The product's engine, except that 'loading' builds the pipeline with random weights (on the
    GPU, where that is fast, with the cap lifted meanwhile) and then places it under the cap."""

    limit_gb: float | None = None

    def load(self, source, strategy=None, **levers):
        strategy = strategy or self.offload
        if self._pipe is not None and self._pipe_key[1] == strategy:
            return self._pipe
        self.unload()
        cap(None)
        _, pipe = build(source.family.id)
        pipe.to("cpu")
        gc.collect()
        torch.cuda.empty_cache()
        cap(self.limit_gb)
        return self.adopt(pipe, source, strategy)


def recovery(out: Path) -> list[dict]:
    photo = out / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (704, 1280, 3), dtype=np.uint8)).save(photo)
    request = GenerationRequest(image=photo, prompt="a cat", model="wan2.2-ti2v-5b", height=704, width=1280,
                                num_frames=121, num_inference_steps=2, seed=1, memory_strategy="none")  # fmt: skip
    rows = []
    cases = (("real OOM under a 30 GB cap", 30), ("real OOM twice under a 16 GB cap", 16))
    for name, limit in cases if "--auto-only" not in sys.argv else ():
        engine = RandomWeightsEngine(out / "videos", device="cuda")
        engine.limit_gb = limit
        before = allocated()
        cap(limit)
        try:
            result = engine.generate(request)
            outcome = {"finished": True, "adjustments": [str(a) for a in result.adjustments], "vae_tiling": result.vae_tiling,
                       "memory_strategy": result.memory_strategy}  # fmt: skip
        except OutOfMemory as exc:
            outcome = {"finished": False, "error": str(exc)}
        finally:
            engine.unload()
            cap(None)
        rows.append({"case": name, **outcome, "allocated_before_gb": before, "allocated_after_gb": allocated()})
        print(json.dumps(rows[-1]), flush=True)

    engine = RandomWeightsEngine(out / "videos", device="cuda")
    seen = []

    def inject(progress):
        if progress.stage == "denoising" and progress.step == 1:
            seen.append(1)
            if len(seen) == 1:
                raise torch.OutOfMemoryError("CUDA out of memory (injected)")

    before = allocated()
    small = request.model_copy(update={"height": 480, "width": 832, "num_frames": 49})
    auto = RandomWeightsEngine(out / "videos", device="cuda").generate(small.model_copy(update={"memory_strategy": "auto"}))
    rows.append({"case": "memory_strategy auto on the whole card", "memory_strategy": auto.memory_strategy,
                 "adjustments": [str(a) for a in auto.adjustments]})  # fmt: skip
    print(json.dumps(rows[-1]), flush=True)
    result = engine.generate(small, on_progress=inject)
    engine.unload()
    rows.append({"case": "injected OOM at the first step", "finished": True, "adjustments": [str(a) for a in result.adjustments],
                 "allocated_before_gb": before, "allocated_after_gb": allocated()})  # fmt: skip
    print(json.dumps(rows[-1]), flush=True)
    return rows


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    # The engine sets the CUDA allocator up as it does when the product runs (expandable segments),
    # before anything is allocated, whether or not PYTORCH_CUDA_ALLOC_CONF was set.
    VideoEngine(out / "videos", device="cuda")
    allocator = getattr(torch._C, "_accelerator_getAllocatorSettings", lambda: "(cannot read)")()
    tiers = []
    if "--recovery-only" not in sys.argv:
        only = [int(a.split("=", 1)[1]) for a in sys.argv if a.startswith("--tier=")]
        for tier in only or sorted(int(t) for t in presets()["tiers"]):
            row = validate_tier(tier)
            print(json.dumps(row), flush=True)
            tiers.append(row)
    work = Path(tempfile.mkdtemp())
    report = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "tiers": tiers,
              "PYTORCH_CUDA_ALLOC_CONF": os.environ.get("PYTORCH_CUDA_ALLOC_CONF"), "allocator": allocator,
              "recovery": [] if "--no-recovery" in sys.argv else recovery(work)}  # fmt: skip
    (out / "validate_tiers.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]))  # --recovery-only skips the tiers, --no-recovery the recovery; --tier=8 checks one tier
