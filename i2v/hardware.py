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


@dataclass(frozen=True)
class DeviceSpec:
    """One device a pool of workers runs jobs on (I2V_DEVICES): "cuda:1", "cpu", ...; `gb` caps the
    memory it may use ("cuda:1=40": at most 40 GB of GPU 1), and gives a CPU device the size the
    planner sees ("cpu=24": fake-sized devices, for dispatch tests on a CPU box)."""

    device: str
    gb: float | None = None

    def capped(self, gb: float | None) -> float | None:
        """`gb` of the device (its total or free memory) as this spec lets a job use it: at most
        its size; the size alone where the device says none (a CPU)."""
        if gb is None:
            return self.gb
        return min(self.gb, gb) if self.gb else gb

    def __str__(self) -> str:
        return self.device if self.gb is None else f"{self.device}={self.gb:g}"


def parse_devices(text: str) -> list[DeviceSpec]:
    """I2V_DEVICES: devices separated by commas, each "cuda", "cuda:N" or "cpu", optionally "=GB".
    A device may repeat only as "cpu" (a GPU runs one worker). Raises ValueError naming the part
    and the rule."""
    specs = []
    for part in (piece.strip() for piece in text.split(",")):
        if not part:
            continue
        device, _, size = part.partition("=")
        device = device.strip().lower()
        if device == "cuda":
            device = "cuda:0"
        if not (device == "cpu" or (device.startswith("cuda:") and device[5:].isdigit())):
            raise ValueError(f"I2V_DEVICES: {part!r} is not a device: use cuda:N or cpu, optionally =GB (cuda:1=40)")
        gb = None
        if size.strip():
            try:
                gb = float(size)
            except ValueError:
                gb = -1.0
            if not 0 < gb <= 4096:
                raise ValueError(f"I2V_DEVICES: {part!r}: the size after = must be a number of GB above 0")
        if device != "cpu" and any(spec.device == device for spec in specs):
            raise ValueError(f"I2V_DEVICES names {device} twice: one worker per GPU")
        specs.append(DeviceSpec(device, gb))
    if not specs:
        raise ValueError("I2V_DEVICES names no device: use e.g. cuda:0,cuda:1")
    return specs


def absent(devices, count: int) -> list[str]:
    """The GPUs among `devices` ("cuda", "cuda:1", ...) that a machine with `count` GPUs (cuda:0 to
    cuda:count-1) does not have; "cpu" it always has."""
    return [device for device in devices if device and device.startswith("cuda")
            and int(device.partition(":")[2] or 0) >= count]  # fmt: skip


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
