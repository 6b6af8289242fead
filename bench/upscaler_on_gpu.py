"""Seconds per frame and peak GPU memory of an ESRGAN-class upscaler file through i2v/upscale.py, on a GPU.

The architecture of Real-ESRGAN x4plus (RRDBNet: 64 filters, 23 blocks) with random weights (speed and memory
do not depend on their values), saved as a file and found, loaded and run exactly as the engine does
(`find_upscaler`, `upscale`: float16 on CUDA, 256-pixel tiles with a 16-pixel overlap). One JSON line per run,
printed and appended to OUT/upscaler.jsonl.

    python bench/upscaler_on_gpu.py OUT_DIR
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from i2v.upscale import find_upscaler, import_spandrel, upscale  # noqa: E402


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    folder = out / "upscalers"
    folder.mkdir(exist_ok=True)
    esrgan = import_spandrel().architectures.ESRGAN.ESRGAN
    for scale in (2, 4):
        torch.manual_seed(0)
        model = esrgan(num_filters=64, num_blocks=23, scale=scale)
        torch.save(model.state_dict(), folder / f"rrdb_x{scale}.pth")
    rows = []
    for factor, (height, width), frames in ((2, (480, 832), 8), (4, (480, 832), 4), (2, (720, 1280), 4)):
        file = find_upscaler(folder, factor)
        video = np.random.default_rng(0).integers(0, 256, (frames, height, width, 3), dtype=np.uint8)
        upscale(video[:1], factor, file, device="cuda")  # warm-up: cuDNN picks its kernels
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        result, used = upscale(video, factor, file, device="cuda")
        torch.cuda.synchronize()
        seconds = (time.perf_counter() - started) / frames
        row = {"file": used, "factor": factor, "height": height, "width": width, "frames": frames,
               "seconds_per_frame": round(seconds, 3),
               "seconds_per_output_megapixel": round(seconds / (result.shape[1] * result.shape[2] / 1e6), 4),
               "peak_gb": round(torch.cuda.max_memory_allocated() / 1e9, 3), "out": list(result.shape),
               "device": torch.cuda.get_device_name(), "torch": torch.__version__}
        print(json.dumps(row), flush=True)
        rows.append(row)
    with (out / "upscaler.jsonl").open("a") as file:
        file.writelines(json.dumps(row) + "\n" for row in rows)


if __name__ == "__main__":
    main()
