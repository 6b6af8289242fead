"""Wan 2.1 FLF2V 14B (720p): the frames between a first and a last photo, through WanImageToVideoPipeline.

- It always ends on a given photo: its transformer adds a learned position embedding over the CLIP
  tokens of two images (`pos_embed_seq_len` = 2 x 257), so a call without `last_image` cannot run
  (the pipeline fails on a shape). Without one the room refuses, naming the rule; `loop` (the
  first photo as the last) is one.
- Its scheduler's shift is Wan's own for this task (generate.py: sample_shift 16 for flf2v),
  set when the pipeline is loaded.
- Folders: the same pipeline class and config as the I2V 14B checkpoints, except that the
  transformer has `pos_embed_seq_len`; the Wan 2.1 rooms leave such folders to this one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

from ..errors import InvalidInput
from .wan import Wan


def transformer_config(folder: Path) -> dict:
    """A folder's transformer/config.json, or {} where there is none to read."""
    try:
        return json.loads((folder / "transformer" / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def is_flf2v(folder: Path) -> bool:
    """A Wan folder whose transformer embeds the CLIP tokens of two images (first and last frame)."""
    return transformer_config(folder).get("pos_embed_seq_len") is not None


class Wan21FLF2V(Wan):
    """Wan 2.1 FLF2V 14B: the I2V 14B design, conditioned on a first and a last photo."""

    needs_last_image: ClassVar[bool] = True  # benches pass a last photo (the first) to run it at all

    def check_conditions(self, num_frames, has_last, keyframes, segments) -> None:
        if segments > 1:  # every call needs an end photo: only a chain's last has one
            raise InvalidInput("request.no_chain", model=self.id, segments=segments)
        if not has_last:
            raise InvalidInput("request.needs_last_image", model=self.id)

    def call_kwargs(self, pipe, knobs, photo, last_photo, keyframes=()) -> dict:
        if last_photo is None:
            raise InvalidInput("request.needs_last_image", model=self.id)
        return super().call_kwargs(pipe, knobs, photo, last_photo, keyframes)

    def claims(self, index: dict, folder: Path) -> bool:
        plain = not (index.get("transformer_2") or [None])[0] and not index.get("expand_timesteps")
        return super().claims(index, folder) and plain and is_flf2v(folder)

    def tiny_components(self) -> dict:
        import torch
        from diffusers import UniPCMultistepScheduler, WanTransformer3DModel

        from ..tiny import clip_vision, t5_text

        tokenizer, text_encoder = t5_text(umt5=True)
        # CLIP at 4x4 pixels, patch 1: 16 + 1 tokens an image, two images' worth of position embedding.
        image_encoder, image_processor = clip_vision(hidden=4, image_size=4, projection=False)
        torch.manual_seed(0)
        transformer = WanTransformer3DModel(
            patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=36, out_channels=16,
            text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
            rope_max_seq_len=32, image_dim=4, pos_embed_seq_len=2 * (4 * 4 + 1),
        )  # fmt: skip
        scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                            flow_shift=self.flow_shift)  # fmt: skip
        return {
            "transformer": transformer, "vae": self.tiny_vae(), "scheduler": scheduler, "text_encoder": text_encoder,
            "tokenizer": tokenizer, "image_encoder": image_encoder, "image_processor": image_processor,
            "transformer_2": None,
        }  # fmt: skip
