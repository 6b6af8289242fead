"""I2VGen-XL through I2VGenXLPipeline (deprecated in diffusers; the engine of the app this project
grew from). The pipeline has no `callback_on_step_end`: steps are seen through the scheduler. Its
default `clip_skip` (1) breaks under transformers 5, so it is passed as None; `target_fps` is the fps.
It also samples its image latents from torch's global RNG, which the engine seeds per run."""

from __future__ import annotations

from .base import Family


class I2VGenXL(Family):
    step_hook = "scheduler"

    def call_kwargs(self, pipe, knobs, photo, last_photo, keyframes=()) -> dict:
        kwargs = super().call_kwargs(pipe, knobs, photo, last_photo, keyframes)
        kwargs.update(target_fps=knobs.fps, clip_skip=None)
        return kwargs

    def tiny_components(self) -> dict:
        import torch
        from diffusers import AutoencoderKL, DDIMScheduler
        from diffusers.models.unets import I2VGenXLUNet
        from transformers import CLIPTextConfig, CLIPTextModel

        from ..tiny import clip_tokenizer, clip_vision

        scheduler = DDIMScheduler(
            beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False
        )
        torch.manual_seed(0)
        unet = I2VGenXLUNet(
            block_out_channels=(4, 8), layers_per_block=1, sample_size=32, in_channels=4, out_channels=4,
            down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"), up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
            cross_attention_dim=4, attention_head_dim=4, num_attention_heads=None, norm_num_groups=2,
        )  # fmt: skip
        torch.manual_seed(0)
        vae = AutoencoderKL(
            block_out_channels=(8,), in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"],
            up_block_types=["UpDecoderBlock2D"], latent_channels=4, sample_size=32, norm_num_groups=2,
        )  # fmt: skip
        tokenizer = clip_tokenizer()
        torch.manual_seed(0)
        text_encoder = CLIPTextModel(CLIPTextConfig(
            bos_token_id=0, eos_token_id=1, hidden_size=4, intermediate_size=16, layer_norm_eps=1e-05,
            num_attention_heads=2, num_hidden_layers=2, pad_token_id=1, vocab_size=len(tokenizer), hidden_act="gelu",
            projection_dim=32,
        ))  # fmt: skip
        image_encoder, feature_extractor = clip_vision(hidden=4)
        return {"unet": unet, "scheduler": scheduler, "vae": vae, "text_encoder": text_encoder,
                "image_encoder": image_encoder, "tokenizer": tokenizer, "feature_extractor": feature_extractor}  # fmt: skip
