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
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

FACTORS = (2, 4)

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
    flow (on the CPU); returns the frames and which of the two made them."""
    if folder is not None:
        from .rife import find_rife, rife_interpolate

        model_file = find_rife(folder)
        if model_file is not None:
            return rife_interpolate(frames, factor, model_file, device=device, on_frame=on_frame), "rife"
    return interpolate(frames, factor, on_frame=on_frame), "optical_flow"


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
