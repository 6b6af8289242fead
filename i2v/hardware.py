"""What this machine has: its CUDA GPUs (name, total and free memory), its RAM, and which GPU a
device string ("cuda", "cuda:1", "cpu") means. The planner (i2v/memory.py) decides with these numbers;
this module only reads them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from messages import Message, note

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

    def gpu_for(self, device: str | None) -> GPU | None:
        """The GPU that `device` runs on: "cuda:1" is GPU 1, "cuda" (or no device named, on a machine
        with a GPU) is GPU 0, "cpu" is none; None too when that GPU is not here."""
        if not self.gpus or (device is not None and not device.startswith("cuda")):
            return None
        index = int(device.split(":", 1)[1]) if device and ":" in device else 0
        return next((gpu for gpu in self.gpus if gpu.index == index), None)

    def summary(self, device: str | None = None) -> Message:
        """Every GPU (the one `device` uses marked) and the RAM, or that there is no GPU, in words."""
        if not self.gpus:
            return note("hardware.cpu_only", ram_gb=self.ram_gb)
        used = self.gpu_for(device)
        cards = [note("hardware.gpu_used" if gpu == used else "hardware.gpu", index=gpu.index, name=gpu.name,
                      free_gb=gpu.free_gb, total_gb=gpu.total_gb) for gpu in self.gpus]  # fmt: skip
        return note("hardware.gpus", gpus=cards, ram_gb=self.ram_gb)


def detect() -> Hardware:
    """Every CUDA GPU and the host RAM, as they are now."""
    import torch

    gpus = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(index)
            gpus.append(GPU(index, torch.cuda.get_device_name(index), total / GiB, free / GiB))
    return Hardware(tuple(gpus), _ram_bytes() / GiB)


def host_ram_gb() -> float | None:
    """This machine's RAM in GB; None when the system does not say."""
    return _ram_bytes() / GiB or None


def available_gb(device: str) -> float:
    """GB a run on `device` could use now: free memory plus what torch already holds for our own model."""
    import torch

    where = torch.device(device)
    free, _ = torch.cuda.mem_get_info(where)
    return (free + torch.cuda.memory_reserved(where)) / GiB


def _ram_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0
