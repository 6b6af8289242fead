"""Post-processing of frames: optical-flow interpolation and upscaling (Lanczos, and a tiny random
ESRGAN loaded through spandrel, tiled)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from i2v.interpolate import interpolate
from i2v.upscale import find_upscaler, import_spandrel, upscale

DARK, BRIGHT = 20, 230


def moving_square(xs: list[int], height: int = 64, width: int = 96, side: int = 16) -> np.ndarray:
    """Frames of a bright square on a dark background, its left edge at each of `xs`."""
    frames = np.full((len(xs), height, width, 3), DARK, dtype=np.uint8)
    top = (height - side) // 2
    for frame, x in zip(frames, xs):
        frame[top : top + side, x : x + side] = BRIGHT
    return frames


def centroid_x(frame: np.ndarray) -> float:
    weight = frame[..., 0].astype(np.float64) - DARK
    return float((weight.sum(axis=0) * np.arange(frame.shape[1])).sum() / weight.sum())


def noise(count: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, height, width, 3), dtype=np.uint8)


# ---------------------------------------------------------------------------------- interpolation
@pytest.mark.parametrize("factor", [2, 4])
def test_interpolation_keeps_the_originals_and_makes_factor_times_the_frames(factor):
    frames = moving_square([10, 18, 26, 34])
    out = interpolate(frames, factor)
    assert out.shape == ((4 - 1) * factor + 1, 64, 96, 3) and out.dtype == np.uint8
    assert np.array_equal(out[::factor], frames)


def test_a_static_video_stays_static():
    frames = np.repeat(noise(1, 48, 64), 3, axis=0)  # sharp noise: a tenth of a pixel of false flow would show
    out = interpolate(frames, 4)
    assert (out == frames[0]).all()


def test_a_moving_square_is_between_its_positions():
    frames = moving_square([20, 32])
    out = interpolate(frames, 2)
    before, middle, after = (centroid_x(frame) for frame in out)
    assert before < middle < after
    assert abs(middle - (before + after) / 2) < 1.5  # half way
    lit = (out[..., 0] > (DARK + BRIGHT) / 2).sum(axis=(1, 2))
    assert lit[1] < 1.3 * lit[0]  # one square moved, not two faded squares (which light twice the pixels, dimly)


def test_a_fade_lies_between_its_neighbours():
    scene = np.linspace(40, 220, 48)[None, :, None].repeat(32, axis=0).repeat(3, axis=2)  # a gradient
    frames = np.stack([scene, scene * 0.4]).astype(np.uint8)  # darkening, nothing moving
    out = interpolate(frames, 4).astype(int)
    low, high = np.minimum(frames[0], frames[1]).astype(int), np.maximum(frames[0], frames[1]).astype(int)
    for step in range(1, 4):
        assert ((low <= out[step]) & (out[step] <= high)).all()
    assert out[0].mean() > out[1].mean() > out[2].mean() > out[3].mean() > out[4].mean()  # in time order


def test_interpolation_reports_each_pair_and_a_raise_stops_it():
    frames = moving_square([10, 14, 18, 22])
    done: list[int] = []
    interpolate(frames, 2, on_frame=done.append)
    assert done == [1, 2, 3]

    def stop(k):
        if k == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interpolate(frames, 2, on_frame=stop)


def test_interpolation_rejects_other_factors():
    with pytest.raises(ValueError, match="factor 3"):
        interpolate(moving_square([0, 1]), 3)


# ---------------------------------------------------------------------------------- upscaling
@pytest.mark.parametrize("factor", [2, 4])
def test_lanczos_upscale(factor):
    frames = noise(2, 24, 40)
    done: list[int] = []
    out, name = upscale(frames, factor, None, on_frame=done.append)
    assert name == "lanczos"
    assert out.shape == (2, 24 * factor, 40 * factor, 3) and out.dtype == np.uint8
    assert done == [1, 2]


@pytest.fixture
def upscalers(tmp_path):
    """A folder with a tiny random ESRGAN of scale 2 (64 filters -> 4, 23 blocks -> 1) and a junk file."""
    import_spandrel()
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(0)
    model = ESRGAN(num_filters=4, num_blocks=1, scale=2)
    torch.save(model.state_dict(), tmp_path / "tiny-esrgan-x2.pth")
    (tmp_path / "a-junk.pth").write_bytes(b"no weights in here")
    (tmp_path / "notes.txt").write_text("not even a weight file")
    return tmp_path


def test_find_upscaler_picks_a_loadable_file_and_skips_junk(upscalers, caplog):
    with caplog.at_level(logging.WARNING, logger="i2v.upscale"):
        assert find_upscaler(upscalers, 2) == upscalers / "tiny-esrgan-x2.pth"
    assert "a-junk.pth" in caplog.text
    assert find_upscaler(upscalers, 4) is None  # a 2x file does not make 4x: Lanczos does
    assert find_upscaler(None, 2) is None
    assert find_upscaler(upscalers / "missing", 2) is None


def test_find_upscaler_prefers_the_exact_scale_then_the_smallest_above(tmp_path):
    import_spandrel()
    from spandrel.architectures.ESRGAN import ESRGAN

    for name, scale in [("a-x8.pth", 8), ("b-x4.pth", 4), ("c-x2.pth", 2), ("d-x4.pth", 4)]:
        torch.manual_seed(0)
        torch.save(ESRGAN(num_filters=4, num_blocks=1, scale=scale).state_dict(), tmp_path / name)
    assert find_upscaler(tmp_path, 4) == tmp_path / "b-x4.pth"
    assert find_upscaler(tmp_path, 2) == tmp_path / "c-x2.pth"
    (tmp_path / "b-x4.pth").unlink(), (tmp_path / "d-x4.pth").unlink()
    assert find_upscaler(tmp_path, 4) == tmp_path / "a-x8.pth"  # resized down after


def test_model_upscale_is_tiled_and_close_to_untiled(upscalers, monkeypatch):
    from spandrel.architectures.ESRGAN import ESRGAN

    seen: list[tuple[int, int]] = []
    forward = ESRGAN.forward

    def recording(self, x):
        seen.append(tuple(x.shape[-2:]))
        return forward(self, x)

    monkeypatch.setattr(ESRGAN, "forward", recording)
    frames = noise(2, 48, 80)
    model = find_upscaler(upscalers, 2)
    done: list[int] = []
    tiled, name = upscale(frames, 2, model, tile=16, overlap=4, on_frame=done.append)
    assert name == "tiny-esrgan-x2.pth" and done == [1, 2]
    assert tiled.shape == (2, 96, 160, 3) and tiled.dtype == np.uint8
    assert max(max(shape) for shape in seen) <= 16 + 2 * 4 < 48  # bounded while the frame is bigger
    assert len(seen) == 2 * 3 * 5  # 48 / 16 rows of 80 / 16 tiles, each frame

    seen.clear()
    whole, _ = upscale(frames, 2, model, tile=1024)
    assert seen == [(48, 80), (48, 80)]
    assert np.abs(tiled.astype(int) - whole).mean() < 2


def test_a_2x_model_asked_for_4x_is_resized_to_4x(upscalers):
    out, name = upscale(noise(1, 20, 28), 4, upscalers / "tiny-esrgan-x2.pth", tile=64)
    assert out.shape == (1, 80, 112, 3) and name == "tiny-esrgan-x2.pth"


def test_spandrel_leaves_no_stand_in_for_torchvision():
    import importlib.util
    import sys

    import_spandrel()
    if importlib.util.find_spec("torchvision") is None:
        assert "torchvision" not in sys.modules  # transformers would take it for the real one
