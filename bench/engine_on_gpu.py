"""Run every family's tiny model through VideoEngine on a CUDA GPU: the CUDA path, bf16/fp16, offload, determinism.

Speed and memory of tiny models mean nothing; this proves the GPU code path works end to end
(load in the family's dtype, move or offload, generate, cancel, export) and that the same seed gives
the same frames on the GPU too. Usage (on a GPU machine):

    python bench/engine_on_gpu.py OUT_DIR
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from i2v.engine import VideoEngine
from i2v.errors import Cancelled
from i2v.export import read_mp4
from i2v.families import load_families
from i2v.request import GenerationRequest
from i2v.tiny import make_tiny



def photo(directory: Path) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    path = directory / "photo.png"
    Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(path)
    return path


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp())
    image = photo(work)
    rows = []
    for family in load_families().values():
        folder = make_tiny(family.id, work / family.id)
        for offload in ("none", "model"):
            engine = VideoEngine(work / "videos", device="cuda", offload=offload)
            size = {} if family.size_rule == "fixed" else {"height": 64, "width": 64}
            request = GenerationRequest(
                image=image, prompt="a cat turns its head", model=str(folder), num_frames=9,
                num_inference_steps=3, seed=1, **size,
            )  # fmt: skip
            torch.cuda.reset_peak_memory_stats()
            started = time.perf_counter()
            first = engine.generate(request)
            seconds = time.perf_counter() - started
            second = engine.generate(request)
            same = np.array_equal(read_mp4(first.path)[0], read_mp4(second.path)[0])
            pipe = engine._pipe
            denoiser = getattr(pipe, "transformer", None) or pipe.unet
            cancel = threading.Event()
            try:
                engine.generate(request, on_progress=lambda p: p.step >= 1 and cancel.set(), cancel=cancel)
                cancelled = False
            except Cancelled:
                cancelled = True
            engine.unload()
            row = {
                "family": family.id,
                "offload": offload,
                "dtype": str(denoiser.dtype).removeprefix("torch."),
                "frames": list(read_mp4(first.path)[0].shape),
                "deterministic": same,
                "cancelled": cancelled,
                "seconds_first_run": round(seconds, 2),
                "peak_gb": round(torch.cuda.max_memory_allocated() / 2**30, 3),
                "allocated_after_unload_mb": round(torch.cuda.memory_allocated() / 2**20, 1),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    (out / "engine_on_gpu.json").write_text(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows}, indent=2))
    failed = [r for r in rows if not (r["deterministic"] and r["cancelled"])]
    print(f"{len(rows) - len(failed)} passed, {len(failed)} failed")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
