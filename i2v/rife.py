"""More frames between a video's frames, by RIFE v4.6 (a learned interpolator), when its weights are here.

RIFE ("Real-time Intermediate Flow Estimation", Huang et al., ECCV 2022) reads two frames and a time
t between them, and estimates two flows (from the frame at t back to each neighbour) and a mask. It
warps each neighbour along its flow and blends the two warps by the mask, so where something comes
out from behind something else, the frame that can see it is taken. The network here is IFNet of
Practical-RIFE v4.6 (github.com/hzwer/Practical-RIFE, MIT), written again from its description: four
IFBlocks refine flow and mask coarse to fine, at 1/8, 1/4, 1/2 and full size. Its layer names and
shapes are those of the published v4.6 weights (`flownet.pkl`, also shared as `rife46.pth`), checked
against HolyWu/vs-rife's `vsrife/IFNet_HDv3_v4_6.py` (commit 2a7f2c8), so that file loads strictly
once the "module." in front of its keys is taken off. Other RIFE versions have other layers and
are skipped.

This module knows frames and RIFE weight files: not requests, families or settings. With no file,
the caller interpolates by optical flow (`interpolate.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .interpolate import frames_around

log = logging.getLogger(__name__)

SUFFIXES = (".pkl", ".pth", ".safetensors", ".pt")  # .pkl: Practical-RIFE's own; the others as shared since
# Each IFBlock sees the frames shrunk by its scale; two stride-2 convolutions then shrink them 4 times more,
# and a 4x transposed convolution with pixel shuffle grows them back. Sides that divide by 4 * 8 come back
# exactly the size they went in; frames are padded up to that and cropped after.
SCALES = (8, 4, 2, 1)
MULTIPLE = 4 * SCALES[0]
# v4.6's 5,306,256 weights take 21 MB in float32. A bigger file is some other model, and is skipped
# unread rather than loaded whole into memory to find that out.
MAX_BYTES = 64 * 2**20


def _conv(in_channels: int, out_channels: int) -> nn.Sequential:
    """A 3x3 convolution of stride 2 (halves the sides) and a leaky ReLU. v4.6 has LeakyReLU(0.2),
    which has no weights, where RIFE's first versions had PReLU."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, 2, 1), nn.LeakyReLU(0.2, inplace=True))


class ResConv(nn.Module):
    """x + beta * conv(x), then a leaky ReLU: one of the eight residual steps of an IFBlock. `beta`
    weighs the convolution per channel (ones at first)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1)
        self.beta = nn.Parameter(torch.ones((1, channels, 1, 1)))
        self.relu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(x) * self.beta + x)


class IFBlock(nn.Module):
    """One scale of IFNet: reads its input shrunk by `scale` (and the flow so far, if any) and says
    a flow (4 channels, in pixels of the full size: t -> frame 0 in x, y, then t -> frame 1) and a
    mask logit (1 channel), both at the input's full size."""

    def __init__(self, in_channels: int, width: int):
        super().__init__()
        self.conv0 = nn.Sequential(_conv(in_channels, width // 2), _conv(width // 2, width))  # 1/4 of the sides
        self.convblock = nn.Sequential(*(ResConv(width) for _ in range(8)))
        # 24 channels at twice the sides, shuffled into 6 at 4 times: 4 of flow, 1 of mask, 1 unused
        self.lastconv = nn.Sequential(nn.ConvTranspose2d(width, 4 * 6, 4, 2, 1), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor, flow: torch.Tensor | None, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.interpolate(x, scale_factor=1 / scale, mode="bilinear", align_corners=False)
        if flow is not None:  # shrunk flow moves by fewer pixels
            flow = F.interpolate(flow, scale_factor=1 / scale, mode="bilinear", align_corners=False) / scale
            x = torch.cat((x, flow), 1)
        out = self.lastconv(self.convblock(self.conv0(x)))
        out = F.interpolate(out, scale_factor=scale, mode="bilinear", align_corners=False)
        return out[:, :4] * scale, out[:, 4:5]


class IFNet(nn.Module):
    """RIFE v4.6's flow network. `forward(img0, img1, timestep)`: two frames (N, 3, H, W) in [0, 1],
    H and W multiples of MULTIPLE, and t (N, 1, H, W) -> the frame at t, (N, 3, H, W)."""

    def __init__(self):
        super().__init__()
        # block0 reads both frames and t (3 + 3 + 1); the others both frames warped to t, t, the mask
        # so far (3 + 3 + 1 + 1) and the flow so far (4). Widths fall as the scale grows finer.
        self.block0 = IFBlock(7, width=192)
        self.block1 = IFBlock(8 + 4, width=128)
        self.block2 = IFBlock(8 + 4, width=96)
        self.block3 = IFBlock(8 + 4, width=64)

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        blocks = (self.block0, self.block1, self.block2, self.block3)
        flow, mask = blocks[0](torch.cat((img0, img1, timestep), 1), None, scale=SCALES[0])
        for block, scale in zip(blocks[1:], SCALES[1:]):
            warped0, warped1 = backward_warp(img0, flow[:, :2]), backward_warp(img1, flow[:, 2:4])
            more_flow, more_mask = block(torch.cat((warped0, warped1, timestep, mask), 1), flow, scale=scale)
            flow, mask = flow + more_flow, mask + more_mask
        warped0, warped1 = backward_warp(img0, flow[:, :2]), backward_warp(img1, flow[:, 2:4])
        weight = torch.sigmoid(mask)  # how much of frame 0 each pixel takes
        return warped0 * weight + warped1 * (1 - weight)


def backward_warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """`image` (N, C, H, W) sampled at p + flow[p] for each pixel p (flow (N, 2, H, W) in pixels, x
    then y), bilinear, edges repeated. Done in float32 whatever the dtype: in float16 a sampling
    position near the right edge of an 832-pixel frame is only good to a fifth of a pixel."""
    _, _, height, width = image.shape
    ys = torch.linspace(-1.0, 1.0, height, device=image.device)
    xs = torch.linspace(-1.0, 1.0, width, device=image.device)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1)  # (H, W, 2): x, y in [-1, 1]
    # with align_corners=True, -1 and 1 are the centres of the edge pixels: a pixel is 2 / (side - 1)
    step = torch.tensor([2 / max(width - 1, 1), 2 / max(height - 1, 1)], device=image.device)
    grid = grid + flow.float().permute(0, 2, 3, 1) * step
    warped = F.grid_sample(image.float(), grid, mode="bilinear", padding_mode="border", align_corners=True)
    return warped.to(image.dtype)


# ---------------------------------------------------------------------------------- weight files
def find_rife(folder: Path | None) -> Path | None:
    """The first file in `folder` (name order, SUFFIXES) whose weights load strictly into IFNet, or
    None. Other files are skipped with a warning (each version of a file is read once)."""
    if folder is None or not Path(folder).is_dir():
        return None
    for path in sorted(Path(folder).iterdir(), key=lambda path: path.name):
        if path.is_file() and path.suffix.lower() in SUFFIXES:
            stat = path.stat()
            if _is_rife(path, stat.st_mtime_ns, stat.st_size):
                return path
    return None


@lru_cache(maxsize=256)
def _is_rife(path: Path, mtime_ns: int, size: int) -> bool:
    """Whether `path` (a file version: its time and size) holds RIFE v4.6 weights; a warning if not."""
    if size > MAX_BYTES:
        log.warning("skipping %s: %d MB is too big for RIFE v4.6 weights (21 MB)", path.name, size // 10**6)
        return False
    try:
        load_ifnet(path)
    except Exception as error:  # anything a file can hold: not weights, another version, a broken file
        log.warning("skipping %s: not RIFE v4.6 weights (%s: %s)", path.name, type(error).__name__,
                    str(error)[:300])  # fmt: skip
        return False
    return True


def load_ifnet(model_file: Path) -> IFNet:
    """IFNet with the weights of `model_file` (on the CPU, in the file's dtype, in eval mode). The
    file holds a dict of tensors (torch.load, weights only; or safetensors), its keys as IFNet's,
    a leading "module." (left by DataParallel in training) taken off. Raises if any key or shape
    differs from IFNet's."""
    model_file = Path(model_file)
    if model_file.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(model_file, device="cpu")
    else:
        state = torch.load(model_file, map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise ValueError(f"{model_file.name} does not hold a dict of tensors")
    state = {str(key).removeprefix("module."): value for key, value in state.items()}
    with torch.device("meta"):  # no memory and no random init for weights about to be replaced
        model = IFNet()
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()


# ---------------------------------------------------------------------------------- interpolation
def rife_interpolate(
    frames: np.ndarray,
    factor: int,
    model_file: Path,
    device: str = "cpu",
    on_frame: Callable[[int], None] | None = None,
) -> np.ndarray:
    """`frames` (T, H, W, 3) uint8 -> ((T - 1) * factor + 1, H, W, 3) uint8, as `interpolate.interpolate`:
    frame k of the input is frame k * factor of the output, and between each pair come RIFE's frames
    at t = 1/factor, 2/factor, ... (all of a pair's in one batch). float16 on a GPU, float32 on the
    CPU. `on_frame(k)` is called once each pair is done, with k pairs done; what it raises (a
    cancel) stops the work and propagates."""
    out = frames_around(frames, factor)
    count, height, width = frames.shape[:3]
    if count == 1:
        return out

    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    model = load_ifnet(model_file).to(device, dtype)
    between = factor - 1
    pad = (0, -width % MULTIPLE, 0, -height % MULTIPLE)  # right and bottom, repeating the edge

    def tensor(frame: np.ndarray) -> torch.Tensor:  # (H, W, 3) uint8 -> (between, 3, H', W') padded, [0, 1]
        image = torch.from_numpy(frame).to(device).permute(2, 0, 1).unsqueeze(0).to(dtype) / 255
        return F.pad(image, pad, mode="replicate").expand(between, -1, -1, -1)

    with torch.inference_mode():
        times = torch.arange(1, factor, device=device, dtype=dtype) / factor
        timestep = times.view(between, 1, 1, 1).expand(-1, 1, height + pad[3], width + pad[1])
        before = tensor(frames[0])
        for k in range(count - 1):
            after = tensor(frames[k + 1])
            middle = model(before, after, timestep)[:, :, :height, :width]
            pixels = (middle.float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            out[k * factor + 1 : (k + 1) * factor] = pixels
            before = after
            if on_frame is not None:
                on_frame(k + 1)
    return out
