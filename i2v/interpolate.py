"""More frames between a video's frames, by dense optical flow (OpenCV, no weights).

Between each pair of frames, Farneback flow is measured both ways on grayscale; each neighbour is
warped toward the in-between time t with `cv2.remap`, and the two warps are blended with weights
(1 - t, t). The original frames are kept exactly. A static scene comes out static (zero flow warps
nothing); a fade blends; motion follows the flow. This module knows frames and nothing else: not
models, requests, fps or files (RIFE's weight files are `rife.py`'s). It does not reason about
occlusion: where something appears from behind something else, or moves much farther than the flow
can follow, the in-between frames show a soft double image (what a learned interpolator such as
RIFE does better: `interpolate_with` uses RIFE, from `rife.py`, when a folder holds its weights,
and this module's flow when not).

A video's fps is reached from the model's in two steps (`fps_factor`, `retime`): interpolation by a
power of two (x2 and x4 in one pass, x8 and x16 as two: x4 then x2 or x4) up to at least the fps
asked, then each frame of the asked fps taken at its time from the nearest interpolated one, so the
motion keeps its speed and the video its length. Frames are never held past the last one made.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

FACTORS = (2, 4)  # one pass
PASSES = {2: (2,), 4: (4,), 8: (4, 2), 16: (4, 4)}  # the factors `interpolate_with` makes, in passes

# cv2.calcOpticalFlowFarneback's arguments, those of OpenCV's own sample (samples/python/opt_flow.py):
# a pyramid of 3 halvings, a 15-pixel window, 3 iterations, a degree-5 polynomial over a Gaussian of
# sigma 1.2. On a 480x832 pan the midpoint frame was off by 0.5 levels of 255 at 12 px a frame, 1.4 at
# 24 px and 9 at 40 px (a plain blend: 8, 12, 17); 5 levels of pyramid did no better.
FLOW = dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)
# Flow shorter than this (pixels) is the estimate's noise, not motion: two identical frames measure
# up to 0.1 px. It is taken as none, so what stands still stays exactly still (a bilinear warp by a
# tenth of a pixel moves sharp edges by a few levels); what moves less is blended, not warped.
STILL = 0.25


def frames_around(frames: np.ndarray, factor: int) -> np.ndarray:
    """The interpolated video's array, `frames` already in it at every `factor`-th place (the frames
    between are for the interpolator to fill), after checking what it was given."""
    if factor not in FACTORS:
        raise ValueError(f"interpolation factor {factor} must be one of {FACTORS}")
    if frames.ndim != 4 or frames.shape[0] < 1 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, not {frames.shape} {frames.dtype}")
    count, height, width = frames.shape[:3]
    out = np.empty(((count - 1) * factor + 1, height, width, 3), dtype=np.uint8)
    out[::factor] = frames
    return out


def interpolate_with(
    frames: np.ndarray,
    factor: int,
    folder: Path | None = None,
    device: str = "cpu",
    on_frame: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, Literal["rife", "optical_flow"]]:
    """As `interpolate`, by RIFE when `folder` holds its weights (run on `device`), else by optical
    flow (on the CPU); returns the frames and which of the two made them. `factor` 8 and 16 are two
    passes (`PASSES`); `on_frame(k)` counts the pairs of every pass, one after the other
    (`pairs_for` says how many in all)."""
    if factor not in PASSES:
        raise ValueError(f"interpolation factor {factor} must be one of {tuple(PASSES)}")
    model_file = None
    if folder is not None:
        from .rife import find_rife

        model_file = find_rife(folder)
    done = 0
    for step in PASSES[factor]:
        counted = None if on_frame is None else (lambda k, before=done: on_frame(before + k))
        pairs = len(frames) - 1
        if model_file is not None:
            from .rife import rife_interpolate

            frames = rife_interpolate(frames, step, model_file, device=device, on_frame=counted)
        else:
            frames = interpolate(frames, step, on_frame=counted)
        done += pairs
    return frames, "rife" if model_file is not None else "optical_flow"


def pairs_for(count: int, factor: int) -> int:
    """How many pairs of frames `interpolate_with` works through for `count` frames at `factor`."""
    pairs = 0
    for step in PASSES[factor]:
        pairs += count - 1
        count = (count - 1) * step + 1
    return pairs


def fps_factor(model_fps: int, fps: int, asked: int = 1) -> int:
    """The interpolation factor that takes `model_fps` frames to at least `fps`: the least power of two
    that does, and at least `asked` (a request's own `interpolate`). 1 when the model makes enough."""
    factor = 1
    while model_fps * factor < fps and factor < max(PASSES):
        factor *= 2
    return max(factor, asked)


def retimed_count(count: int, from_fps: int, to_fps: int) -> int:
    """How many frames `retime` makes of `count`: as many as fit, at `to_fps`, in the time from the
    first frame to the last ((count - 1) / from_fps seconds)."""
    return (count - 1) * to_fps // from_fps + 1


def retime(frames: np.ndarray, from_fps: int, to_fps: int) -> np.ndarray:
    """`frames` made at `from_fps` as the same motion at `to_fps`: frame j of the result is the one
    nearest the time j / to_fps (ties to the later), from the first frame to the last. Fewer frames
    when `to_fps` is lower (dropped evenly), the same ones when it is equal; a higher `to_fps` would
    repeat frames, so interpolate up to it first (`fps_factor`)."""
    if from_fps == to_fps:
        return frames
    count = retimed_count(len(frames), from_fps, to_fps)
    picks = (2 * np.arange(count) * from_fps + to_fps) // (2 * to_fps)  # round(j * from_fps / to_fps), in integers
    return frames[picks]


def interpolate(frames: np.ndarray, factor: int, on_frame: Callable[[int], None] | None = None) -> np.ndarray:
    """`frames` (T, H, W, 3) uint8 -> ((T - 1) * factor + 1, H, W, 3) uint8: frame k of the input is
    frame k * factor of the output, and between each pair come the frames at t = 1/factor, 2/factor,
    ... `on_frame(k)` is called once each pair is done, with k pairs done; what it raises (a cancel)
    stops the work and propagates."""
    out = frames_around(frames, factor)
    count, height, width = frames.shape[:3]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    gray = cv2.cvtColor(frames[0], cv2.COLOR_RGB2GRAY)
    for k in range(count - 1):
        before, after = frames[k], frames[k + 1]
        gray_after = cv2.cvtColor(after, cv2.COLOR_RGB2GRAY)
        # forward[p]: where the pixel at p in `before` went in `after`; backward: the other way
        forward = _flow(gray, gray_after)
        backward = _flow(gray_after, gray)
        for step in range(1, factor):
            t = step / factor
            # what is at p at time t was at p - t * forward in `before`, and is at p - (1 - t) * backward in `after`
            from_before = _warp(before, grid_x - t * forward[..., 0], grid_y - t * forward[..., 1])
            from_after = _warp(after, grid_x - (1 - t) * backward[..., 0], grid_y - (1 - t) * backward[..., 1])
            blend = (1 - t) * from_before + t * from_after
            out[k * factor + step] = np.clip(np.rint(blend), 0, 255).astype(np.uint8)
        gray = gray_after
        if on_frame is not None:
            on_frame(k + 1)
    return out


def _flow(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """(H, W, 2) float32: where each pixel of `start` went in `end`, zero where it moved less than STILL."""
    flow = cv2.calcOpticalFlowFarneback(start, end, None, **FLOW)
    flow[np.hypot(flow[..., 0], flow[..., 1]) < STILL] = 0
    return flow


def _warp(frame: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    """`frame` sampled at (map_x, map_y), bilinear, edges repeated; float32."""
    return cv2.remap(frame, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
