"""Wan 2.1 VACE 1.3B (480p) and 14B (480p and 720p): a video that starts on the photo and holds the
subjects of reference images, through WanVACEPipeline.

VACE takes no `image`: it is conditioned by a video and a mask of the same length, plus reference
images. Image-to-video is the VACE "first frame" task (its UserGuide, diffusers' pipeline example):
- `video` is the photo, then mid-grey frames; `mask` is black (keep) for the photo's frame and white
  (make) for the rest. With an end photo the last frame is that photo, kept by its mask too (`loop`
  puts the first photo there).
- `reference_images` (subjects: people, objects, a background) are encoded one latent frame each and
  put before the video's latent frames, their mask all "keep"; after denoising the pipeline drops
  those latent frames before decoding, so the video has exactly `num_frames` frames (each reference
  costs one latent frame of compute, about 4 frames' worth). The pipeline scales each reference to
  fit the video's size and centres it on white; the engine hands them over already fitted
  (i2v/references.py's `fit_reference`), so a 50-megapixel photo is not scaled on the device.
  At most one reference per latent frame of the video (9 frames: 3): diffusers pads the mask of the
  references from the video's own mask and fails past it, so the check step refuses more.
- Grey is 128: diffusers' example builds PIL frames of (128, 128, 128) (the original code's 127.5
  computed on arrays, which 8-bit frames cannot hold).
- The scheduler's shift: diffusers' WanVACEPipeline example, "5.0 for 720P, 3.0 for 480P" (Wan's own
  generate.py uses 16 for every VACE task; we follow diffusers, whose pipeline we run). The family's
  `flow_shift` is set at load; a 14B call at 480p or smaller takes `flow_shift_480p` instead, set on
  the scheduler before the call (and set back for a larger one), with a log line.
Folders: WanVACEPipeline with one transformer; the 14B's has 40 attention heads (5120 wide, 40 layers),
the 1.3B's 12 (1536 wide, 30 layers); a folder whose config cannot be read is told by its name.
A folder with a `transformer_2` (Wan 2.2 VACE-Fun A14B) is neither.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from ..errors import InvalidInput
from .wan import Wan

log = logging.getLogger(__name__)

GREY = (128, 128, 128)  # a frame to make: diffusers' example's grey (0 after the pipeline's [-1, 1] scaling, nearly)
SMALL_AREA = 480 * 832  # 480p: at most this many pixels takes flow_shift_480p


def conditioning(photo, last_photo, num_frames: int) -> tuple[list, list]:
    """VACE's `video` and `mask` for a video that starts on `photo` (and ends on `last_photo`, if
    any): the photos where they stand, grey frames to make between, a black mask frame (keep) under
    each photo and a white one (make) under each grey frame."""
    from PIL import Image

    size = photo.size
    keep, make = Image.new("L", size, 0), Image.new("L", size, 255)
    grey = Image.new("RGB", size, GREY)
    video, mask = [photo] + [grey] * (num_frames - 1), [keep] + [make] * (num_frames - 1)
    if last_photo is not None and num_frames > 1:
        video[-1], mask[-1] = last_photo, keep
    return video, mask


class WanVACE(Wan):
    """Wan 2.1 VACE: the photo as the first frame of a conditioning video, and reference images of subjects."""

    context_parallel: ClassVar[bool] = False  # WanVACETransformer3DModel has no `_cp_plan` in diffusers 0.42.1

    flow_shift_480p: float | None = Field(None, gt=0, description="the scheduler's shift for a call of 480p or "
                                          "smaller (None: flow_shift at every size)")  # fmt: skip

    def check_references(self, num_frames: int, count: int) -> None:
        # diffusers 0.42.1 (and main) pads the mask with zeros_like(mask[:, :references]): past the video's
        # latent frames the padding comes out short and the call fails on a shape.
        if count > (latent := (num_frames - 1) // self.frame_step + 1):
            raise InvalidInput("reference.too_few_frames", model=self.id, count=count, num_frames=num_frames,
                               latent=latent, minimum=(count - 1) * self.frame_step + 1)  # fmt: skip

    def call_kwargs(self, pipe, knobs, photo, last_photo, keyframes=(), references: Sequence = ()) -> dict:
        kwargs = super().call_kwargs(pipe, knobs, photo, last_photo, keyframes)
        kwargs.pop("image")
        kwargs.pop("last_image", None)
        video, mask = conditioning(photo, last_photo, knobs.num_frames)
        kwargs.update(video=video, mask=mask, reference_images=list(references) or None)
        self._set_shift(pipe, knobs.height * knobs.width)
        return kwargs

    def _set_shift(self, pipe, area: int) -> None:
        """The scheduler's shift for a call of `area` pixels (see the module's docstring)."""
        shift = self.flow_shift_480p if self.flow_shift_480p is not None and area <= SMALL_AREA else self.flow_shift
        if shift is None:
            return
        config = dict(pipe.scheduler.config)
        key = "flow_shift" if "flow_shift" in config else "shift"
        if config.get(key) != shift:
            log.info("%s: the scheduler's shift set to %s for %d pixels a frame", self.id, shift, area)
            pipe.scheduler = type(pipe.scheduler).from_config(config, **{key: shift})

    def claims(self, index: dict, folder: Path) -> bool:
        if index.get("_class_name") != self.pipeline or (index.get("transformer_2") or [None])[0] is not None:
            return False
        try:
            config = json.loads((folder / "transformer" / "config.json").read_text(encoding="utf-8"))
            big = config["num_attention_heads"] >= 40
        except (OSError, json.JSONDecodeError, KeyError, TypeError):
            big = "14b" in folder.name.lower()
        return big == ("14b" in self.id)

    def tiny_components(self) -> dict:
        import torch
        from diffusers import UniPCMultistepScheduler, WanVACETransformer3DModel

        from ..tiny import t5_text

        tokenizer, text_encoder = t5_text(umt5=True)
        big = "14b" in self.id  # as the real ones: the 14B has 40 attention heads, the 1.3B 12 (claims reads it)
        torch.manual_seed(0)
        transformer = WanVACETransformer3DModel(
            patch_size=(1, 2, 2), num_attention_heads=40 if big else 2, attention_head_dim=6 if big else 12,
            in_channels=16, out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32, num_layers=3, cross_attn_norm=True,
            qk_norm="rms_norm_across_heads", rope_max_seq_len=32, vace_layers=[0, 2],
            vace_in_channels=96,  # the video's latents twice (kept, made: 16 + 16) and the 8x8 mask folded in (64)
        )  # fmt: skip
        scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                            flow_shift=self.flow_shift)  # fmt: skip
        return {"transformer": transformer, "transformer_2": None, "vae": self.tiny_vae(), "scheduler": scheduler,
                "text_encoder": text_encoder, "tokenizer": tokenizer}  # fmt: skip

