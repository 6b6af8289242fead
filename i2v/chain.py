"""Long videos by segments: what joins one segment to the next.

Each segment after the first starts from the last frame of the one before (the engine renders it
with that frame as its photo) and its own first frame, which only repeats that frame, is dropped:
the joins have no repeated frame. Models drift in colour and brightness over a chain (each segment
starts from a frame a little off, and goes further); `hold_colour` pulls each later segment back
to the first segment's colour, gradually over the segment, so the join itself does not jump. This
module works on frames only; it knows nothing about models or requests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# A per-channel gain beyond these bounds, or a brightness shift beyond this many levels, is a change of
# scene (a light turned on, a new place), not drift: that segment is left as it was made.
GAIN_BOUNDS = (0.67, 1.5)
MAX_SHIFT = 40.0


def as_uint8(frames: np.ndarray) -> np.ndarray:
    """Frames as (T, H, W, 3) uint8, from uint8 or floats in [0, 1]."""
    if frames.dtype == np.uint8:
        return frames
    return (np.clip(frames, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


@dataclass(frozen=True)
class Colour:
    """The per-channel mean and spread of a segment's pixels (0-255 levels)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def of(cls, frames: np.ndarray) -> Colour:
        pixels = frames.reshape(-1, frames.shape[-1]).astype(np.float64)
        return cls(pixels.mean(axis=0), np.maximum(pixels.std(axis=0), 1.0))


def hold_colour(frames: np.ndarray, reference: Colour) -> tuple[np.ndarray, float | None]:
    """`frames` (uint8) moved towards `reference`'s colour: frame 0 untouched (it joins the segment
    before), the last frame fully matched, the ones between in proportion. Returns the frames and
    the largest channel's shift at the end, in 0-255 levels (0.0 when none moved a level);
    None (and the frames as they were) for a change of scene, which is not drift."""
    own = Colour.of(frames)
    gain = reference.std / own.std
    offset = reference.mean - own.mean * gain
    scene = np.any(gain < GAIN_BOUNDS[0]) or np.any(gain > GAIN_BOUNDS[1])
    if scene or np.abs(reference.mean - own.mean).max() > MAX_SHIFT:  # any one channel: a new hue is a new scene
        return frames, None
    count = len(frames)
    held = np.empty_like(frames)
    for index, frame in enumerate(frames):
        weight = index / (count - 1) if count > 1 else 1.0
        pixels = frame.astype(np.float32)
        matched = pixels * gain.astype(np.float32) + offset.astype(np.float32)
        held[index] = np.clip(pixels + weight * (matched - pixels) + 0.5, 0, 255).astype(np.uint8)
    moved = own.mean * gain + offset - own.mean  # per channel, at the segment's end
    largest = float(moved[np.argmax(np.abs(moved))])  # a cast moves channels apart: their mean would hide it
    return held, largest if abs(largest) >= 1.0 else 0.0


def chained_frames(per_call: int, segments: int) -> int:
    """The frames of `segments` calls of `per_call` frames each, joined (`join`): each call after the
    first adds its frames but the one it starts on."""
    return per_call + (segments - 1) * (per_call - 1)


def join(parts: list[np.ndarray]) -> np.ndarray:
    """Segments into one video: each later segment without its first frame (the join)."""
    return np.concatenate([parts[0], *(part[1:] for part in parts[1:])]) if len(parts) > 1 else parts[0]
