"""Wan: Wan 2.1 I2V 14B (480p and 720p checkpoints), Wan 2.2 I2V A14B (two experts) and Wan 2.2
TI2V 5B, all through WanImageToVideoPipeline.

- A14B's second expert (`transformer_2`, low noise) takes its own guidance: the same as the first.
- A14B ends on a given frame (`last_image`); Wan 2.1's I2V checkpoints cannot (only FLF2V can).
- Folders: the 5B ships as a text-to-video `WanPipeline` that takes a photo (`expand_timesteps`);
  A14B has a `transformer_2`; the 480p and 720p 14B checkpoints share one config, so the folder's
  name tells them apart; FLF2V 14B (its own room, wan_flf2v.py) is told by its transformer's
  `pos_embed_seq_len`, and these rooms leave it alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from .base import Family


class Wan(Family):
    """What the Wan rooms share: the tiny VAE and transformer."""

    # WanTransformer3DModel has a `_cp_plan`: the latent video's tokens split across GPUs (its text is
    # not: Wan 2.1's 257 image tokens would not divide). The 14B's 40 heads: plain Ulysses on 2, 4, 5
    # or 8 GPUs, padded on 3, 6 or 7; the 5B's 24: plain on 2, 3, 4, 6 or 8, padded on 5, refused on 7
    # (4 heads of padding for 4 heads a GPU).
    context_parallel: ClassVar[bool] = True

    @staticmethod
    def tiny_vae(wide: bool = False):
        import torch
        from diffusers import AutoencoderKLWan

        torch.manual_seed(0)
        if wide:  # Wan 2.2 TI2V 5B: 48 latent channels, 16x spatial compression
            return AutoencoderKLWan(
                base_dim=3, z_dim=48, in_channels=12, out_channels=12, is_residual=True, patch_size=2,
                latents_mean=[0.0] * 48, latents_std=[1.0] * 48, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                scale_factor_spatial=16, scale_factor_temporal=4, temperal_downsample=[False, True, True],
            )  # fmt: skip
        return AutoencoderKLWan(
            base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
        )

    @staticmethod
    def tiny_transformer(in_channels: int, out_channels: int, image_dim: int | None):
        import torch
        from diffusers import WanTransformer3DModel

        torch.manual_seed(0)
        return WanTransformer3DModel(
            patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=in_channels,
            out_channels=out_channels, text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
            qk_norm="rms_norm_across_heads", rope_max_seq_len=32, image_dim=image_dim,
        )  # fmt: skip


class Wan21(Wan):
    """Wan 2.1 I2V 14B: a CLIP image encoder beside UMT5; 480p and 720p are two checkpoints."""

    def claims(self, index: dict, folder: Path) -> bool:
        from .wan_flf2v import is_flf2v  # FLF2V 14B (720p) shares this config but for its two-image embedding

        plain = not (index.get("transformer_2") or [None])[0] and not index.get("expand_timesteps")
        return (super().claims(index, folder) and plain and ("720" in folder.name) == ("720" in self.id)
                and not is_flf2v(folder))  # fmt: skip

    def tiny_components(self) -> dict:
        from diffusers import FlowMatchEulerDiscreteScheduler

        from ..tiny import clip_vision, t5_text

        tokenizer, text_encoder = t5_text(umt5=True)
        image_encoder, image_processor = clip_vision(hidden=4, projection=False)
        return {
            "transformer": self.tiny_transformer(36, 16, image_dim=4), "vae": self.tiny_vae(),
            "scheduler": FlowMatchEulerDiscreteScheduler(shift=3.0), "text_encoder": text_encoder,
            "tokenizer": tokenizer, "image_encoder": image_encoder, "image_processor": image_processor,
            "transformer_2": None,
        }  # fmt: skip


class Wan22A14B(Wan):
    """Wan 2.2 I2V A14B: a high-noise and a low-noise expert (`transformer_2`), boundary_ratio 0.9."""

    def call_kwargs(self, pipe, knobs, photo, last_photo, keyframes=()) -> dict:
        kwargs = super().call_kwargs(pipe, knobs, photo, last_photo, keyframes)
        kwargs["guidance_scale_2"] = knobs.guidance_scale  # the low-noise expert's, the same
        return kwargs

    def claims(self, index: dict, folder: Path) -> bool:
        return super().claims(index, folder) and (index.get("transformer_2") or [None])[0] is not None

    def tiny_components(self) -> dict:
        from diffusers import UniPCMultistepScheduler

        from ..tiny import t5_text

        tokenizer, text_encoder = t5_text(umt5=True)
        return {
            "transformer": self.tiny_transformer(36, 16, image_dim=None),
            "transformer_2": self.tiny_transformer(36, 16, image_dim=None), "vae": self.tiny_vae(),
            "scheduler": UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0),
            "text_encoder": text_encoder, "tokenizer": tokenizer, "image_encoder": None, "image_processor": None,
            "boundary_ratio": 0.875,
        }  # fmt: skip


class Wan22TI2V5B(Wan):
    """Wan 2.2 TI2V 5B: the photo is the first latent frame (`expand_timesteps`), a 16x VAE."""

    def claims(self, index: dict, folder: Path) -> bool:
        # Published as a text-to-video WanPipeline that also takes a photo.
        return index.get("_class_name") == "WanPipeline" or (super().claims(index, folder)
                                                              and bool(index.get("expand_timesteps")))  # fmt: skip

    def tiny_components(self) -> dict:
        from diffusers import UniPCMultistepScheduler

        from ..tiny import t5_text

        tokenizer, text_encoder = t5_text(umt5=True)
        return {
            "transformer": self.tiny_transformer(48, 48, image_dim=None), "transformer_2": None,
            "vae": self.tiny_vae(wide=True),
            "scheduler": UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0),
            "text_encoder": text_encoder, "tokenizer": tokenizer, "image_encoder": None, "image_processor": None,
            "expand_timesteps": True,
        }  # fmt: skip
