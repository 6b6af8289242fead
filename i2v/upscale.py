"""Bigger frames: 2 or 4 times the width and height, by an upscaler file or by Lanczos.

An upscaler file is image-upscaler weights (ESRGAN, Real-ESRGAN, SwinIR, ... : .pth, .safetensors
or .pt) that spandrel recognises; `find_upscaler` picks one from a folder for a factor. `upscale`
runs it on each frame in tiles, so memory stays bounded however big the frame is, and resizes the
result with Lanczos where the file's own scale is not the factor asked for. With no file, each frame
is resized with Lanczos (PIL). This module knows frames and weight files: not requests, families or
the 3840x2160 limit on a result, which the caller checks before it asks.

spandrel imports torchvision for two architectures that are no upscalers (LaMa inpainting,
RestoreFormer faces), and PyPI has no CPU build of torchvision: where torch is a CPU build,
install.sh leaves torchvision out and `import_spandrel` imports spandrel with a stand-in for those names.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import sys
import threading
import types
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

FACTORS = (2, 4)
SUFFIXES = (".pth", ".safetensors", ".pt")  # what spandrel reads (.ckpt too, but that is rarely an upscaler)


def find_upscaler(folder: Path | None, factor: int) -> Path | None:
    """The upscaler file in `folder` for `factor`: one whose scale is `factor`, else one of the
    smallest scale above it (the result is resized down), else None (Lanczos then). Files are taken
    in name order; one that spandrel cannot load as an image upscaler is skipped, with a warning."""
    if folder is None or not Path(folder).is_dir():
        return None
    scales: dict[Path, int] = {}
    for path in sorted(Path(folder).iterdir(), key=lambda path: path.name):
        if path.is_file() and path.suffix.lower() in SUFFIXES:
            stat = path.stat()
            scale = _scale_of(path, stat.st_mtime_ns, stat.st_size)
            if scale is not None:
                scales[path] = scale
    above = [scale for scale in scales.values() if scale >= factor]
    if not above:
        return None
    best = factor if factor in above else min(above)
    return next(path for path, scale in scales.items() if scale == best)


@lru_cache(maxsize=256)
def _scale_of(path: Path, mtime_ns: int, size: int) -> int | None:
    """The scale of the upscaler in `path` (a file version: its time and size), or None, with a
    warning, when it is none. Loaded on the CPU once per version of the file."""
    try:
        descriptor = import_spandrel().ModelLoader().load_from_file(path)
    except Exception as error:  # anything a file can hold: not weights, another architecture, a broken file
        log.warning("skipping %s: spandrel cannot load it (%s: %s)", path.name, type(error).__name__, error)
        return None
    if descriptor.purpose != "SR" or descriptor.scale < 2:
        log.warning("skipping %s: a %s model of scale %d, not an upscaler", path.name, descriptor.purpose,
                    descriptor.scale)  # fmt: skip
        return None
    return descriptor.scale


def upscale(
    frames: np.ndarray,
    factor: int,
    model_file: Path | None,
    device: str = "cpu",
    tile: int = 256,
    overlap: int = 16,
    on_frame: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, str]:
    """`frames` (T, H, W, 3) uint8 -> ((T, H * factor, W * factor, 3) uint8, what upscaled them: the
    file's name, or "lanczos"). The model sees at most `tile` x `tile` pixels of a frame at a time,
    plus `overlap` on each side to hide the seams. `on_frame(k)` is called once each frame is done,
    with k frames done; what it raises (a cancel) stops the work and propagates."""
    if factor not in FACTORS:
        raise ValueError(f"upscale factor {factor} must be one of {FACTORS}")
    if frames.ndim != 4 or frames.shape[0] < 1 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, not {frames.shape} {frames.dtype}")
    if tile < 1 or overlap < 0:
        raise ValueError(f"tile {tile} must be at least 1 and overlap {overlap} at least 0")
    count, height, width = frames.shape[:3]
    size = (width * factor, height * factor)
    out = np.empty((count, size[1], size[0], 3), dtype=np.uint8)
    if model_file is None:
        for k, frame in enumerate(frames):
            out[k] = _lanczos(frame, size)
            if on_frame is not None:
                on_frame(k + 1)
        return out, "lanczos"

    import torch

    descriptor = import_spandrel().ModelLoader(device=device).load_from_file(model_file)
    if descriptor.purpose != "SR":
        raise ValueError(f"{Path(model_file).name} is a {descriptor.purpose} model, not an upscaler")
    dtype = torch.float16 if device.startswith("cuda") and descriptor.supports_half else torch.float32
    descriptor.to(dtype).eval()
    with torch.inference_mode():
        for k, frame in enumerate(frames):
            big = _run_tiled(descriptor, frame, tile, overlap, device, dtype)
            out[k] = big if big.shape[:2] == (size[1], size[0]) else _lanczos(big, size)
            if on_frame is not None:
                on_frame(k + 1)
    return out, Path(model_file).name


def _run_tiled(descriptor, frame: np.ndarray, tile: int, overlap: int, device: str, dtype) -> np.ndarray:
    """`frame` through the model, `tile` x `tile` input pixels at a time (as even as the frame
    allows) with `overlap` more on each side; each tile's centre goes into the result."""
    import torch

    scale = descriptor.scale
    height, width = frame.shape[:2]
    image = torch.from_numpy(frame).to(device).permute(2, 0, 1).unsqueeze(0).to(dtype) / 255
    out = np.empty((height * scale, width * scale, 3), dtype=np.uint8)
    for top, bottom in _spans(height, tile):
        for left, right in _spans(width, tile):
            y0, y1 = max(0, top - overlap), min(height, bottom + overlap)
            x0, x1 = max(0, left - overlap), min(width, right + overlap)
            result = descriptor(image[:, :, y0:y1, x0:x1])[0]
            rows = slice((top - y0) * scale, (bottom - y0) * scale)  # the tile's centre, in the result
            columns = slice((left - x0) * scale, (right - x0) * scale)
            pixels = (result[:, rows, columns].float() * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
            out[top * scale : bottom * scale, left * scale : right * scale] = pixels
    return out


def _spans(length: int, tile: int) -> list[tuple[int, int]]:
    """[0, length) cut into the fewest spans of at most `tile`, their lengths as equal as can be."""
    count = math.ceil(length / tile)
    edges = [round(i * length / count) for i in range(count + 1)]
    return list(zip(edges[:-1], edges[1:]))


def _lanczos(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.LANCZOS))


_import_lock = threading.Lock()


def import_spandrel():
    """The spandrel module. Where torchvision is not installed (a CPU torch: PyPI has no CPU build
    of it), spandrel is imported with a stand-in for the three torchvision names its LaMa and
    RestoreFormer architectures import, taken out of sys.modules again at once so that no other
    library (transformers looks for torchvision) mistakes it for torchvision. Those two
    architectures then fail if run; no upscaler uses them."""
    if "spandrel" in sys.modules or importlib.util.find_spec("torchvision") is not None:
        import spandrel

        return spandrel
    with _import_lock:
        if "spandrel" in sys.modules:
            return sys.modules["spandrel"]
        stand_ins = _torchvision_stand_in()
        sys.modules.update(stand_ins)
        try:
            import spandrel
        finally:
            for name in stand_ins:
                sys.modules.pop(name, None)
        return spandrel


def _torchvision_stand_in() -> dict[str, types.ModuleType]:
    import enum

    def missing(*args, **kwargs):
        raise RuntimeError("this model needs torchvision, which is not installed (PyPI has no CPU build of it)")

    class InterpolationMode(enum.Enum):
        NEAREST = "nearest"
        BILINEAR = "bilinear"
        BICUBIC = "bicubic"

    names = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")
    torchvision, transforms, functional = (types.ModuleType(name) for name in names)
    functional.InterpolationMode, functional.rotate, functional.normalize = InterpolationMode, missing, missing
    transforms.functional = functional
    torchvision.transforms = transforms
    return dict(zip(names, (torchvision, transforms, functional)))
