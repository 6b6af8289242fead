"""A gentle colour grade of finished frames: a request's `color_palette` for a model that reads no prompt.

A model that reads a prompt is told the palette in words (i2v/phrasing.py); SVD and the camera engine
read none, so their frames are graded after the render instead: per-channel gains (warm: more red,
less blue; cool: the other way) and a gray-world balance that pulls each channel's mean part of the
way to the mean of the three (neutral: a colour cast taken out). The amounts are data
(configs/styles.toml, `grade`), measured once over the whole video so every frame gets the same curve
and nothing flickers. It knows frames and palettes only.
"""

from __future__ import annotations

import numpy as np

from .phrasing import palette_grade


def grade(frames: np.ndarray, palette: str) -> np.ndarray:
    """(T, H, W, 3) uint8 frames graded towards `palette` (warm, cool or neutral); a new array."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, not {frames.shape} {frames.dtype}")
    spec = palette_grade(palette)
    gains = np.asarray(spec.get("gains", (1.0, 1.0, 1.0)), dtype=np.float64)
    balance = float(spec.get("balance", 0.0))
    if balance:
        means = frames.reshape(-1, 3).mean(axis=0, dtype=np.float64)
        target = means.mean()
        gains = gains * (1.0 + balance * (target / np.maximum(means, 1.0) - 1.0))
    most = spec.get("most")
    if most is not None:  # a gentle grade: no channel's gain moves further than this
        gains = np.clip(gains, 1.0 - float(most), 1.0 + float(most))
    levels = np.arange(256, dtype=np.float64)
    tables = np.clip(np.rint(levels[None, :] * gains[:, None]), 0, 255).astype(np.uint8)  # (3, 256): one curve a channel
    out = np.empty_like(frames)
    for channel in range(3):
        out[..., channel] = tables[channel][frames[..., channel]]
    return out


__all__ = ["grade"]
