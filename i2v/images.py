"""Open and normalise an uploaded photo, and fit it to a video's size.

Any photo a person might upload becomes a plain 8-bit RGB image: EXIF rotation applied, CMYK,
16-bit, palette, grey and alpha images converted (alpha flattened onto white), animated files read
at their first frame. Non-images and decompression bombs are refused with a message that says why.
This module knows nothing about models or videos.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from messages import Message, note

from .errors import InvalidInput
from .request import Fit

log = logging.getLogger(__name__)

MAX_PIXELS = 50_000_000  # a 50-megapixel photo is the largest we decode (about 150 MB as RGB)
MAX_BYTES = 100 * 1024 * 1024
MIN_SIDE = 16


def open_photo(path: str | Path) -> tuple[Image.Image, list[Message]]:
    """The photo at `path` as RGB, and notes on what was changed to get there."""
    path = Path(path)
    notes: list[Message] = []
    if not path.is_file():
        raise InvalidInput("photo.missing", name=path.name)
    size = path.stat().st_size
    if size == 0:
        raise InvalidInput("photo.empty", name=path.name)
    if size > MAX_BYTES:
        raise InvalidInput("photo.too_many_bytes", name=path.name, mb=size / 2**20, limit_mb=MAX_BYTES // 2**20)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise InvalidInput("photo.too_many_pixels", name=path.name, width=width, height=height,
                                   megapixels=width * height / 1e6, limit=MAX_PIXELS / 1e6)  # fmt: skip
            if getattr(image, "n_frames", 1) > 1:
                image.seek(0)
                notes.append(note("photo.animated", name=path.name, frames=image.n_frames))
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidInput("photo.bomb", name=path.name, limit=MAX_PIXELS / 1e6) from None
    except UnidentifiedImageError:
        raise InvalidInput("photo.unreadable", name=path.name) from None
    except OSError as exc:
        log.info("photo %s could not be decoded: %s", path.name, exc)
        raise InvalidInput("photo.damaged", name=path.name) from None

    if min(image.size) < MIN_SIDE:
        raise InvalidInput("photo.too_small", name=path.name, width=image.width, height=image.height, minimum=MIN_SIDE)
    orientation = _orientation(image)
    if orientation not in (None, 1):
        image = ImageOps.exif_transpose(image)
        notes.append(note("photo.exif", name=path.name, orientation=orientation))
    return _to_rgb(image, path.name, notes), notes


def _orientation(image: Image.Image) -> int | None:
    try:
        return image.getexif().get(0x0112)
    except Exception:  # a broken EXIF block is no reason to refuse the photo
        return None


def _to_rgb(image: Image.Image, name: str, notes: list[Message]) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        data = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if mode.startswith("I;16") or data.max() > 255 else 255.0
        grey = np.clip(data / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        notes.append(note("photo.high_bit_depth", name=name, mode=mode))
        return Image.fromarray(grey, "L").convert("RGB")
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        notes.append(note("photo.transparency", name=name))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "CMYK":
        notes.append(note("photo.cmyk", name=name))
    return image.convert("RGB")


def fit(image: Image.Image, width: int, height: int, mode: Fit = "crop") -> Image.Image:
    """Fit `image` to exactly width x height keeping its aspect: center crop, or pad with black."""
    if image.size == (width, height):
        return image
    if mode == "crop":
        return ImageOps.fit(image, (width, height), method=Image.Resampling.LANCZOS, centering=(0.5, 0.5))
    return ImageOps.pad(image, (width, height), method=Image.Resampling.LANCZOS, color=(0, 0, 0), centering=(0.5, 0.5))
