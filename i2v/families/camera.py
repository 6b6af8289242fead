"""The camera engine: real camera moves over the photo itself, with no model weights and no GPU.

A family like the others (`Camera`), except that it renders its frames itself instead of through a
diffusers pipeline. Each frame is an affine view (center, scale, rotation) into the photo, fitted
with a margin so that pans and tilts have room to travel. Moves are eased (smoothstep), so they
start and stop gently. Orbits are approximated by a parallax-free rotate-and-scale; dollies by a
push that accelerates towards a point a little below the center. This is a motion preview, not a
generated video, and every result says so (`preview`). It knows nothing about diffusion models.

A request's `motion_intensity` (0.1 to 1.5, 1 the usual) scales each move's amplitude about the
still view: offsets and roll times the intensity, zoom to the power of it (1.5: half again as far,
0.5: half as far; the shake of handheld too). Where a larger move would run past the photo's
margin, every view of the clip is zoomed in by the same small amount so none does (`fitted`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..images import fit
from .base import Family

MARGIN = 1.3  # the photo is fitted to 1.3x the frame, so a view can travel 15% each way


@dataclass(frozen=True)
class View:
    """Where the virtual camera looks, relative to the margin-fitted photo."""

    dx: float = 0.0  # view center offset, in frame widths (+ = right)
    dy: float = 0.0  # in frame heights (+ = down)
    scale: float = 1.0  # view size relative to the frame: < 1 is closer (zoomed in)
    angle: float = 0.0  # degrees, counter-clockwise


def _smooth(t: float) -> float:
    return t * t * (3.0 - 2.0 * t)


def _lerp(a: float, b: float, t: float) -> float:
    return a + (b - a) * t


# Each move maps eased progress e in [0, 1] (and raw time t) to a View.
MOVES: dict[str, Callable[[float, float], View]] = {
    "static": lambda e, t: View(dx=0.004 * np.sin(2 * np.pi * t), scale=_lerp(0.97, 0.95, e)),
    "pan_left": lambda e, t: View(dx=_lerp(0.12, -0.12, e)),
    "pan_right": lambda e, t: View(dx=_lerp(-0.12, 0.12, e)),
    "tilt_up": lambda e, t: View(dy=_lerp(0.12, -0.12, e)),
    "tilt_down": lambda e, t: View(dy=_lerp(-0.12, 0.12, e)),
    "zoom_in": lambda e, t: View(scale=_lerp(1.0, 0.7, e)),
    "zoom_out": lambda e, t: View(scale=_lerp(0.7, 1.0, e)),
    "dolly_in": lambda e, t: View(dy=_lerp(0.0, 0.04, e * e), scale=_lerp(1.0, 0.72, e * e)),
    "dolly_out": lambda e, t: View(dy=_lerp(0.04, 0.0, 1 - (1 - e) ** 2), scale=_lerp(0.72, 1.0, 1 - (1 - e) ** 2)),
    "orbit_left": lambda e, t: View(dx=_lerp(0.05, -0.05, e), scale=0.8, angle=_lerp(-4.0, 4.0, e)),
    "orbit_right": lambda e, t: View(dx=_lerp(-0.05, 0.05, e), scale=0.8, angle=_lerp(4.0, -4.0, e)),
    "crane_up": lambda e, t: View(dy=_lerp(0.1, -0.1, e), scale=_lerp(0.85, 0.95, e)),
    "crane_down": lambda e, t: View(dy=_lerp(-0.1, 0.1, e), scale=_lerp(0.95, 0.85, e)),
    "tracking": lambda e, t: View(dx=_lerp(-0.1, 0.1, t), scale=0.9),
}


def _handheld(seed: int, count: int) -> list[View]:
    """Small, smooth, seeded shake: low-pass filtered noise on position and roll."""
    rng = np.random.default_rng(seed)
    kernel = np.hanning(9)
    kernel /= kernel.sum()
    noise = [np.convolve(rng.normal(0, 1, count + 8), kernel, mode="valid")[:count] for _ in range(3)]
    return [View(dx=0.02 * noise[0][i], dy=0.02 * noise[1][i], scale=0.9, angle=0.6 * noise[2][i]) for i in range(count)]


def views(motion: str, count: int, seed: int, amplitude: float = 1.0) -> list[View]:
    """The `count` views of `motion`, its amplitude scaled by `amplitude` about the still view."""
    if motion == "handheld":
        moves = _handheld(seed, count)
    else:
        move = MOVES[motion]
        times = [i / (count - 1) if count > 1 else 0.0 for i in range(count)]
        moves = [move(_smooth(t), t) for t in times]
    if amplitude == 1.0:
        return moves
    return [View(dx=v.dx * amplitude, dy=v.dy * amplitude, scale=v.scale**amplitude, angle=v.angle * amplitude)
            for v in moves]  # fmt: skip


def fitted(moves: list[View], width: int, height: int, margin: float = MARGIN) -> list[View]:
    """`moves` zoomed in together by the least that keeps every view inside a canvas of `margin` times
    the frame (a view's rotated corners included); as they are when all fit already (every move at
    amplitude 1 does, with room to spare)."""
    zoom = 1.0
    for v in moves:
        theta = np.deg2rad(v.angle)
        cos, sin = abs(np.cos(theta)), abs(np.sin(theta))
        room_x = (margin / 2 - abs(v.dx)) * width / (v.scale * (width * cos + height * sin) / 2)
        room_y = (margin / 2 - abs(v.dy)) * height / (v.scale * (width * sin + height * cos) / 2)
        zoom = min(zoom, room_x, room_y)
    if zoom >= 1.0:
        return moves
    return [View(dx=v.dx, dy=v.dy, scale=v.scale * zoom, angle=v.angle) for v in moves]


def render(
    photo: Image.Image,
    motion: str,
    width: int,
    height: int,
    num_frames: int,
    seed: int,
    fit_mode: str = "crop",
    on_frame: Callable[[int], None] | None = None,
    continuing: bool = False,
    amplitude: float = 1.0,
) -> np.ndarray:
    """(num_frames, height, width, 3) uint8 frames of `motion` over `photo`, its amplitude scaled by
    `amplitude`. `continuing`: `photo` is the last frame of a segment before (already the video's
    size): the move goes on from it, its first frame is that frame exactly, and what lies beyond its
    edges (a move runs up to 0.43 of the frame past them; at amplitude 1.5 still within the half
    frame mirrored each side) is the frame mirrored: a preview has nothing else to show there."""
    moves = views(motion, num_frames, seed, amplitude)
    if continuing:
        pad_x, pad_y = width // 2, height // 2  # half a frame each side: room for a whole move
        pixels = np.asarray(fit(photo, width, height, fit_mode))
        canvas = Image.fromarray(np.pad(pixels, ((pad_y, pad_y), (pad_x, pad_x), (0, 0)), mode="symmetric"))
        start = moves[0]
        moves = [View(dx=v.dx - start.dx, dy=v.dy - start.dy, scale=v.scale / start.scale, angle=v.angle - start.angle)
                 for v in moves]  # fmt: skip
    else:
        canvas = fit(photo, round(width * MARGIN), round(height * MARGIN), fit_mode)
        moves = fitted(moves, width, height)
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for index, view in enumerate(moves):
        frames[index] = np.asarray(_look(canvas, view, width, height))
        if on_frame is not None:
            on_frame(index + 1)
    return frames


def _look(canvas: Image.Image, view: View, width: int, height: int) -> Image.Image:
    # Output pixel (x, y) samples the canvas at center + R(angle) @ (scale * (x - w/2, y - h/2)).
    theta = np.deg2rad(view.angle)
    cos, sin = np.cos(theta) * view.scale, np.sin(theta) * view.scale
    cx = canvas.width / 2 + view.dx * width
    cy = canvas.height / 2 + view.dy * height
    a, b, d, e = cos, -sin, sin, cos
    c = cx - a * width / 2 - b * height / 2
    f = cy - d * width / 2 - e * height / 2
    return canvas.transform((width, height), Image.Transform.AFFINE, (a, b, c, d, e, f), Image.Resampling.BICUBIC)


class Camera(Family):
    """The camera engine as a family: no pipeline, no weights, no GPU; a preview of the photo moving."""

    def render(self, knobs, photo: Image.Image, on_frame: Callable[[int], None], continuing: bool = False) -> np.ndarray:
        amplitude = 1.0 if knobs.motion_intensity is None else knobs.motion_intensity
        return render(photo, knobs.camera_motion, knobs.width, knobs.height, knobs.num_frames, knobs.seed, knobs.fit,
                      on_frame=on_frame, continuing=continuing, amplitude=amplitude)  # fmt: skip
