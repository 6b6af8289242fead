"""What the machine has: CUDA GPUs (name, total and free memory) and host RAM.

The memory planner (estimates, presets by VRAM, downgrade plans) builds on this; with no GPU,
the machine can run tiny models and the camera engine only, and `Hardware.summary` says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

GiB = 2**30


@dataclass(frozen=True)
class GPU:
    index: int
    name: str
    total_gb: float
    free_gb: float


@dataclass(frozen=True)
class Hardware:
    gpus: tuple[GPU, ...]
    ram_gb: float

    @property
    def summary(self) -> str:
        if not self.gpus:
            return f"No CUDA GPU: CPU only ({self.ram_gb:.0f} GB RAM), for tiny models and the camera engine"
        cards = "; ".join(f"GPU {g.index}: {g.name}, {g.free_gb:.1f} of {g.total_gb:.1f} GB free" for g in self.gpus)
        return f"{cards}; {self.ram_gb:.0f} GB RAM"


def detect() -> Hardware:
    """Every CUDA GPU and the host RAM, as they are now."""
    import torch

    gpus = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(index)
            gpus.append(GPU(index, torch.cuda.get_device_name(index), total / GiB, free / GiB))
    return Hardware(tuple(gpus), _ram_bytes() / GiB)


def _ram_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0
