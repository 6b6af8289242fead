"""Read a request's references (subjects the video holds) into images, and fit them to a video.

A reference is a photo or a short video clip. A photo goes through the same checks as the request's
photo (i2v/images.py: EXIF rotation, modes, size limits); a clip (MP4, or any container ffmpeg reads:
MOV, WebM, MKV) is decoded with the ffmpeg binary imageio-ffmpeg ships, as i2v/export.py writes
videos, and a few of its frames, evenly spaced, become references with the clip's label. Limits, each
refused with a message that names the file and the rule: a clip of at most MAX_CLIP_SECONDS, frames of
at most 4K UHD, MAX_CLIP_BYTES on disk, and at least one frame; all references together give at most
MAX_REFERENCE_IMAGES images (each costs the model a latent frame, about four frames' worth of work):
clips share what the photos leave, FRAMES_PER_CLIP each at most, one at least.
This module knows nothing about models: which families take references is the check step's business.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from messages import Message, note

from .errors import InvalidInput
from .export import describe
from .images import open_photo
from .request import Reference

log = logging.getLogger(__name__)

MAX_REFERENCE_IMAGES = 6  # photos and sampled clip frames together
FRAMES_PER_CLIP = 3  # the most frames one clip gives: a subject from a few sides, not a video's worth
MAX_CLIP_SECONDS = 30.0  # a reference clip is short: it shows a subject, it is not decoded whole for nothing
MAX_CLIP_WIDTH, MAX_CLIP_HEIGHT = 3840, 2160  # 4K UHD, either way round
MAX_CLIP_BYTES = 500 * 1024 * 1024


def open_references(references: Sequence[Reference]) -> tuple[tuple[tuple[str, Image.Image], ...], list[Message]]:
    """Every reference as (label, RGB image), in the request's order (a clip's frames in its order,
    each with the clip's label), and notes on what was done to get there (a photo rotated, a clip's
    frames sampled). Refuses, naming the file, a reference that cannot be read or breaks a limit."""
    opened: list[tuple[Reference, Image.Image | Path]] = []
    notes: list[Message] = []
    for reference in references:
        path = Path(reference.source)
        if not path.is_file():
            raise InvalidInput("reference.missing", name=path.name)
        if path.stat().st_size == 0:
            raise InvalidInput("reference.empty", name=path.name)
        try:
            photo, photo_notes = open_photo(path)
        except InvalidInput as exc:
            if exc.code != "photo.unreadable":  # a photo, but a broken or too big one: its own words say why
                raise
            opened.append((reference, path))  # not an image: a clip, or nothing we read (said below)
            continue
        opened.append((reference, photo))
        notes += photo_notes
    photos = sum(1 for _, item in opened if isinstance(item, Image.Image))
    clips = len(opened) - photos
    if photos + clips > MAX_REFERENCE_IMAGES:
        raise InvalidInput("reference.too_many", count=photos + clips, limit=MAX_REFERENCE_IMAGES)
    per_clip = max(1, min(FRAMES_PER_CLIP, (MAX_REFERENCE_IMAGES - photos) // clips)) if clips else 0
    images: list[tuple[str, Image.Image]] = []
    for reference, item in opened:
        if isinstance(item, Image.Image):
            images.append((reference.label, item))
            continue
        frames, total = read_clip_frames(item, per_clip)
        notes.append(note("reference.clip_sampled", name=item.name, count=len(frames), total=total))
        images += [(reference.label, frame) for frame in frames]
    return tuple(images), notes


def even_indices(count: int, wanted: int) -> list[int]:
    """`wanted` frame indices out of `count`, evenly spaced: the middle of each of `wanted` equal
    parts (a clip's first and last frames are often a fade or a cut); all of them when there are fewer."""
    if count <= wanted:
        return list(range(count))
    return [int((index + 0.5) * count / wanted) for index in range(wanted)]


def read_clip_frames(path: Path, wanted: int) -> tuple[list[Image.Image], int]:
    """`wanted` evenly spaced frames of the clip at `path` as RGB images (fewer when it has fewer),
    and how many frames it has. Refuses a file that is not a clip, a clip without frames, and one
    past the limits, each by name."""
    import imageio_ffmpeg

    name = path.name
    size = path.stat().st_size
    if size > MAX_CLIP_BYTES:
        raise InvalidInput("reference.clip_too_many_bytes", name=name, mb=size / 2**20,
                           limit_mb=MAX_CLIP_BYTES // 2**20)  # fmt: skip
    if not _is_video_container(path):
        raise InvalidInput("reference.unreadable", name=name)
    streams = _streams(path)
    if streams is None:  # a video container ffmpeg cannot open: cut short, or damaged
        raise InvalidInput("reference.clip_damaged", name=name)
    if not any(" Video: " in stream for stream in streams):
        raise InvalidInput("reference.clip_no_frames", name=name)
    reader = imageio_ffmpeg.read_frames(str(path))
    try:
        meta = next(reader)
    except (OSError, RuntimeError, StopIteration) as exc:
        log.info("clip %s could not be opened: %s", name, str(exc).splitlines()[0] if str(exc) else exc)
        raise InvalidInput("reference.clip_damaged", name=name) from None
    finally:
        reader.close()
    width, height = meta["size"]
    if max(width, height) > MAX_CLIP_WIDTH or min(width, height) > MAX_CLIP_HEIGHT:
        raise InvalidInput("reference.clip_too_big", name=name, width=width, height=height,
                           limit_width=MAX_CLIP_WIDTH, limit_height=MAX_CLIP_HEIGHT)  # fmt: skip
    seconds = meta.get("duration") or 0.0
    if seconds > MAX_CLIP_SECONDS:
        raise InvalidInput("reference.clip_too_long", name=name, seconds=seconds, limit=MAX_CLIP_SECONDS)
    try:
        count = imageio_ffmpeg.count_frames_and_secs(str(path))[0]
    except (OSError, RuntimeError) as exc:
        log.info("clip %s could not be counted: %s", name, str(exc).splitlines()[0] if str(exc) else exc)
        raise InvalidInput("reference.clip_damaged", name=name) from None
    if count == 0:
        raise InvalidInput("reference.clip_no_frames", name=name)
    frames, decoded = _decode(path, even_indices(count, wanted), width, height)
    if len(frames) < min(count, wanted):  # fewer frames decode than the container says
        if decoded == 0:
            raise InvalidInput("reference.clip_damaged", name=name)
        log.info("clip %s: %d frames counted, %d decoded; sampling the decoded ones", name, count, decoded)
        count = decoded
        frames, decoded = _decode(path, even_indices(count, wanted), width, height)
    return frames, count


def fit_reference(image: Image.Image, width: int, height: int) -> Image.Image:
    """`image` scaled, aspect kept, to fit inside width x height (the pipeline centres it on its own
    background): nothing cropped, and no photo bigger than the video reaches the model's preprocessing."""
    if image.width <= width and image.height <= height and (image.width == width or image.height == height):
        return image
    return ImageOps.contain(image, (width, height), method=Image.Resampling.LANCZOS)


def _is_video_container(path: Path) -> bool:
    """Whether the file starts as a video container does: MP4 / MOV (an ISO `ftyp` box), WebM / MKV
    (EBML) or AVI (RIFF). ffmpeg alone would also open a text file named .png as a "video" of one PNG."""
    with path.open("rb") as file:
        head = file.read(12)
    return head[4:8] == b"ftyp" or head[:4] == b"\x1a\x45\xdf\xa3" or (head[:4] == b"RIFF" and head[8:12] == b"AVI ")


def _streams(path: Path) -> list[str] | None:
    """The stream lines ffmpeg reports for `path` ("Stream #0:0...: Video: h264 ..."), or None when
    ffmpeg cannot open it as a media file at all."""
    said = describe(path)
    if said is None:
        return None
    return [line for line in said.splitlines() if line.strip().startswith("Stream #")]


def _decode(path: Path, indices: list[int], width: int, height: int) -> tuple[list[Image.Image], int]:
    """The frames at `indices` (in order) of the clip, decoded one after another and only those kept,
    and how many frames were decoded in all (fewer than asked where the file ends early)."""
    import imageio_ffmpeg

    wanted, kept, decoded = set(indices), [], 0
    reader = imageio_ffmpeg.read_frames(str(path))
    try:
        next(reader)
        for index, raw in enumerate(reader):
            decoded = index + 1
            if index in wanted:
                kept.append(Image.fromarray(np.frombuffer(raw, np.uint8).reshape(height, width, 3).copy(), "RGB"))
            if len(kept) == len(wanted):
                break
    except (OSError, RuntimeError) as exc:  # damaged past a point: the frames before it stand
        log.info("clip %s stopped decoding after %d frames: %s", path.name, decoded, str(exc).splitlines()[:1])
    finally:
        reader.close()
    return kept, decoded
