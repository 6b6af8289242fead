"""The camera engine: every move renders, and the picture moves the way the move says."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from i2v.families import camera
from i2v.engine import VideoEngine
from i2v.export import read_mp4
from i2v.images import open_photo
from i2v.request import CAMERA_MOTIONS, GenerationRequest

W, H = 128, 96


@pytest.fixture(scope="module")
def photo(chelsea):
    return open_photo(chelsea)[0]


def grey(frame: np.ndarray) -> np.ndarray:
    return frame.astype(np.float64).mean(axis=2)


def content_shift(first: np.ndarray, last: np.ndarray) -> tuple[float, float]:
    """(dy, dx) in pixels by which the picture content moved from `first` to `last` (phase correlation)."""
    a, b = grey(first), grey(last)
    window = np.outer(np.hanning(a.shape[0]), np.hanning(a.shape[1]))
    cross = np.fft.fft2(b * window) * np.conj(np.fft.fft2(a * window))
    peak = np.fft.ifft2(cross / (np.abs(cross) + 1e-9)).real
    dy, dx = np.unravel_index(np.argmax(peak), peak.shape)
    dy = dy - a.shape[0] if dy > a.shape[0] // 2 else dy
    dx = dx - a.shape[1] if dx > a.shape[1] // 2 else dx
    return float(dy), float(dx)


def content_scale(first: np.ndarray, last: np.ndarray) -> float:
    """How much bigger the content looks in `last` than in `first` (best of candidate zooms about the center)."""
    a, b = Image.fromarray(first), grey(last)
    inner = (slice(H // 4, 3 * H // 4), slice(W // 4, 3 * W // 4))
    best, best_error = 1.0, np.inf
    for scale in np.linspace(0.5, 2.0, 61):
        inv = 1.0 / scale
        data = (inv, 0, W / 2 * (1 - inv), 0, inv, H / 2 * (1 - inv))
        zoomed = grey(np.asarray(a.transform((W, H), Image.Transform.AFFINE, data, Image.Resampling.BILINEAR)))
        error = np.mean((zoomed[inner] - b[inner]) ** 2)
        if error < best_error:
            best, best_error = scale, error
    return best


def test_phase_correlation_measures_a_known_shift(photo):
    frame = np.asarray(photo.resize((W, H)))
    moved = np.roll(frame, (3, -7), axis=(0, 1))
    assert content_shift(frame, moved) == (3.0, -7.0)


@pytest.mark.parametrize("motion", CAMERA_MOTIONS)
def test_every_motion_renders_and_moves(photo, motion):
    frames = camera.render(photo, motion, W, H, 9, seed=1)
    assert frames.shape == (9, H, W, 3) and frames.dtype == np.uint8
    assert np.abs(frames[-1].astype(int) - frames[0].astype(int)).mean() > 1.0, f"{motion} does not move"


@pytest.mark.parametrize(
    ("motion", "axis", "sign"),
    [
        ("pan_left", "x", +1),  # the camera turns left, so the picture slides right
        ("pan_right", "x", -1),
        ("tilt_up", "y", +1),
        ("tilt_down", "y", -1),
        ("crane_up", "y", +1),
        ("crane_down", "y", -1),
        ("tracking", "x", -1),
    ],
)
def test_moves_go_the_requested_way(photo, motion, axis, sign):
    frames = camera.render(photo, motion, W, H, 9, seed=1)
    dy, dx = content_shift(frames[0], frames[-1])
    moved, other = (dx, dy) if axis == "x" else (dy, dx)
    assert sign * moved > 10, f"{motion}: content moved ({dy}, {dx})"
    assert abs(other) < abs(moved) / 2


@pytest.mark.parametrize(
    ("motion", "closer"),
    [("zoom_in", True), ("dolly_in", True), ("zoom_out", False), ("dolly_out", False)],
)
def test_zooms_and_dollies_change_scale(photo, motion, closer):
    frames = camera.render(photo, motion, W, H, 9, seed=1)
    scale = content_scale(frames[0], frames[-1])
    assert scale > 1.25 if closer else scale < 0.8, f"{motion}: content scale {scale:.2f}"


def test_moves_are_eased(photo):
    frames = camera.render(photo, "pan_right", W, H, 21, seed=1)
    steps = [abs(content_shift(frames[i], frames[i + 1])[1]) for i in range(20)]
    assert max(steps[:2]) < max(steps[8:12]) and max(steps[-2:]) < max(steps[8:12])


def test_handheld_is_seeded(photo):
    a = camera.render(photo, "handheld", W, H, 9, seed=1)
    b = camera.render(photo, "handheld", W, H, 9, seed=1)
    c = camera.render(photo, "handheld", W, H, 9, seed=2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_camera_engine_result_is_labelled_a_preview(tmp_path, chelsea):
    engine = VideoEngine(tmp_path)
    result = engine.generate(
        GenerationRequest(image=chelsea, prompt="猫转头", height=H, width=W, num_frames=17, fps=12, camera_motion="zoom_in")
    )
    assert result.engine == "camera" and result.preview
    assert "preview" in result.label.lower()
    frames, meta = read_mp4(result.path)
    assert frames.shape == (17, H, W, 3) and meta["fps"] == 12
    assert result.prompt == "猫转头" and result.camera_motion == "zoom_in"


def test_camera_sizes_round_to_even(tmp_path, chelsea):
    result = VideoEngine(tmp_path).generate(GenerationRequest(image=chelsea, height=51, width=77, num_frames=3))
    assert (result.height, result.width) == (50, 76)
    assert read_mp4(result.path)[0].shape == (3, 50, 76, 3)
