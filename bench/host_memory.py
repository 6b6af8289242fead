"""Host RAM each memory strategy holds, and what unloading a model gives back.

For each strategy, through the product's own VideoEngine: build FAMILY at full size with random
weights (on the GPU, where that is fast, then moved to the CPU for the offload strategies, where
`from_pretrained` would leave it), `adopt` it (the engine's placement), generate 2 steps at a small
size, `unload`. The host memory is sampled all along:
  rss_gb        this process's resident memory (VmRSS), pinned pages included
  pinned_gb     pinned host memory torch's caching host allocator holds (in use + cached)
  available_gb  MemAvailable of the whole machine
`--then FAMILY2` builds and runs a second model in the same process afterwards: the case where a
128 GB machine was OOM-killed after a group-offloaded Wan 2.2 A14B (98 GB still pinned).
`--show-cache` unloads the group-offloaded model once without emptying torch's host cache, to show
what it would keep, then empties it.

    python bench/host_memory.py OUT --family wan2.2-ti2v-5b --strategies none,model,group,sequential
    python bench/host_memory.py OUT --family wan2.2-i2v-a14b --strategies group --then ltx-video --show-cache

No MP4 is written (imageio-ffmpeg's binary is not on the GPU machine): the writer is stubbed.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

import i2v.engine  # noqa: E402
from i2v import placement  # noqa: E402
from i2v.engine import VideoEngine  # noqa: E402
from i2v.families import resolve  # noqa: E402
from i2v.request import GenerationRequest  # noqa: E402
from measure_memory import build  # noqa: E402

GiB = 2**30
SMALL = {"wan2.2-i2v-a14b": (480, 832, 9), "wan2.2-ti2v-5b": (480, 832, 9), "ltx-video": (480, 704, 9),
         "wan2.1-i2v-14b-480p": (480, 832, 9)}  # fmt: skip


def _status(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024 / GiB
    return 0.0


def _available() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024 / GiB
    return 0.0


def _pinned() -> float:
    """Pinned host memory torch's caching host allocator owns, in use or cached (rounded block sizes)."""
    return torch.cuda.host_memory_stats().get("allocated_bytes.current", 0) / GiB


def host() -> dict:
    return {"rss_gb": round(_status("VmRSS"), 2), "pinned_gb": round(_pinned(), 2),
            "available_gb": round(_available(), 2)}  # fmt: skip


class Peak:
    """The highest RSS and pinned memory and the lowest MemAvailable while the block runs."""

    def __enter__(self):
        self.rss, self.pinned, self.available = _status("VmRSS"), _pinned(), _available()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.1):
            self.rss = max(self.rss, _status("VmRSS"))
            self.pinned = max(self.pinned, _pinned())
            self.available = min(self.available, _available())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def result(self) -> dict:
        return {"peak_rss_gb": round(self.rss, 2), "peak_pinned_gb": round(self.pinned, 2),
                "min_available_gb": round(self.available, 2)}  # fmt: skip


def run_once(engine: VideoEngine, family_id: str, strategy: str, photo: Path, show_cache: bool) -> dict:
    row: dict = {"family": family_id, "strategy": strategy, "start": host()}
    started = time.perf_counter()
    with Peak() as building:
        _, pipe = build(family_id)
        if strategy != "none":
            pipe.to("cpu")
        gc.collect()
        torch.cuda.empty_cache()
    row.update(built=host(), build_peak=building.result(), build_seconds=round(time.perf_counter() - started, 1))
    with Peak() as placing:
        engine.adopt(pipe, resolve(family_id), strategy)
        del pipe
        gc.collect()
    row.update(placed=host(), place_peak=placing.result())
    height, width, frames = SMALL[family_id]
    request = GenerationRequest(image=photo, prompt="a cat turns its head", model=family_id, height=height, width=width,
                                num_frames=frames, num_inference_steps=2, seed=1, memory_strategy=strategy)  # fmt: skip
    with Peak() as running:
        started = time.perf_counter()
        engine.generate(request)
    row.update(ran=host(), run_peak=running.result(), run_seconds=round(time.perf_counter() - started, 1))
    if show_cache:
        keep = placement.free_memory

        def without_host_cache(host: bool = False) -> None:
            keep(host=False)

        i2v.engine.free_memory = without_host_cache  # the engine as it was: the host cache kept
        try:
            engine.unload()
        finally:
            i2v.engine.free_memory = keep
        row["unloaded_keeping_host_cache"] = host()
        placement.free_memory(host=True)
    else:
        engine.unload()
    gc.collect()
    row["unloaded"] = host()
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--family", required=True)
    parser.add_argument("--strategies", default="none,model,group,sequential")
    parser.add_argument("--then", help="a second family to build and run in the same process afterwards")
    parser.add_argument("--show-cache", action="store_true", help="also show what unloading without emptying the "
                        "host cache keeps (group offload)")  # fmt: skip
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    photo = args.out / "photo.png"
    Image.fromarray((np.random.default_rng(0).random((480, 832, 3)) * 255).astype(np.uint8)).save(photo)
    i2v.engine.write_mp4 = lambda frames, path, fps, metadata: path  # no ffmpeg here; the frames are made
    engine = VideoEngine(args.out, device="cuda")
    settings = getattr(torch._C, "_accelerator_getAllocatorSettings", lambda: "(cannot read)")()
    header = {"kind": "header", "device": torch.cuda.get_device_name(), "torch": torch.__version__,
              "allocator": settings, "ram_total_gb": round(_total(), 1), "start": host()}  # fmt: skip
    print(json.dumps(header), flush=True)
    rows = [header]
    for strategy in args.strategies.split(","):
        show = args.show_cache and strategy == "group"
        rows.append(run_once(engine, args.family, strategy, photo, show))
        print(json.dumps(rows[-1]), flush=True)
    if args.then:
        rows.append({"second_model": True, **run_once(engine, args.then, "none", photo, False)})
        print(json.dumps(rows[-1]), flush=True)
    with (args.out / "host_memory.jsonl").open("a") as out:
        for row in rows:
            out.write(json.dumps(row) + "\n")


def _total() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024 / GiB
    return 0.0


if __name__ == "__main__":
    main()
