"""CogVideoX 5B I2V through CogVideoXImageToVideoPipeline. Its transformer learns its position
embeddings for one size (480x720) and 13 latent frames (49 frames): any other size is refused, and
the size and frame limit are read from the model's own transformer config when it is on the machine."""

from __future__ import annotations

from messages import Message

from ..errors import InvalidInput
from .base import Family, ModelSource

VAE_SPATIAL = 8  # CogVideoX's VAE compresses 8x in space


class CogVideoX(Family):
    def _learned(self, source: ModelSource) -> dict | None:
        config = source.component_config("transformer")
        return config if config and config.get("use_learned_positional_embeddings") else None

    def fixed(self, source: ModelSource) -> tuple[int, int]:
        config = self._learned(source)
        if config:
            return config["sample_height"] * VAE_SPATIAL, config["sample_width"] * VAE_SPATIAL
        return tuple(self.fixed_size)

    def fit_size(self, height: int, width: int, asked: bool, source: ModelSource, notes: list[Message]) -> tuple[int, int]:
        fixed_height, fixed_width = self.fixed(source)
        if (height, width) != (fixed_height, fixed_width) and asked:
            raise InvalidInput("request.fixed_size", height=height, width=width, model=self.id,
                               fixed_height=fixed_height, fixed_width=fixed_width)  # fmt: skip
        return fixed_height, fixed_width

    def max_frames_for(self, source: ModelSource) -> int:
        config = self._learned(source)
        return config.get("sample_frames", self.max_frames) if config else self.max_frames

    def tiny_components(self) -> dict:
        import torch
        from diffusers import AutoencoderKLCogVideoX, CogVideoXTransformer3DModel, DDIMScheduler

        from ..tiny import t5_text

        torch.manual_seed(0)
        # Learned positional embeddings fix the size, as in CogVideoX-5b-I2V; this one is made for 32x32.
        transformer = CogVideoXTransformer3DModel(
            num_attention_heads=2, attention_head_dim=16, in_channels=8, out_channels=4, time_embed_dim=2,
            text_embed_dim=32, num_layers=1, sample_width=4, sample_height=4, sample_frames=9, patch_size=2,
            temporal_compression_ratio=4,
            max_text_seq_length=226,  # the real model's, which the pipeline pads prompts to
            use_rotary_positional_embeddings=True, use_learned_positional_embeddings=True,
        )  # fmt: skip
        torch.manual_seed(0)
        vae = AutoencoderKLCogVideoX(
            in_channels=3, out_channels=3, down_block_types=("CogVideoXDownBlock3D",) * 4,
            up_block_types=("CogVideoXUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8), latent_channels=4,
            layers_per_block=1, norm_num_groups=2, temporal_compression_ratio=4,
        )  # fmt: skip
        tokenizer, text_encoder = t5_text()
        return {"transformer": transformer, "vae": vae, "scheduler": DDIMScheduler(), "text_encoder": text_encoder,
                "tokenizer": tokenizer}  # fmt: skip
