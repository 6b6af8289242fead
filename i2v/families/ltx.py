"""LTX-Video through LTXImageToVideoPipeline: a 32x spatial, 8x temporal VAE (8n+1 frames), and a
`frame_rate` the transformer is conditioned on, which is the video's fps.

No latent upsampler here: Lightricks' (ltxv-spatial-upscaler-0.9.7) was trained on 0.9.7's VAE
latents (0.9.5's VAE design, kept by 0.9.8), and Lightricks/LTX-Video's diffusers weights are
0.9.0/0.9.1's, whose VAE (another encoder) makes another latent space; nor can
LTXImageToVideoPipeline take a second pass (it has no `denoise_strength`). Upscaling this family
is post-processing. The ltx-video-condition room (ltx_condition.py) has the two-pass way."""

from __future__ import annotations

from typing import ClassVar

from .base import Family


class LTX(Family):
    # No context parallelism: LTXVideoTransformer3DModel has a `_cp_plan`, but the image-to-video
    # pipelines give each token its own timestep (the photo's frame is kept clean), and the plan splits
    # the tokens, not their timesteps: split across two processes, a tiny run failed on the shapes
    # (diffusers 0.42.1). The condition and long rooms, subclasses, call it the same way.
    context_parallel: ClassVar[bool] = False

    def call_kwargs(self, pipe, knobs, photo, last_photo, keyframes=()) -> dict:
        kwargs = super().call_kwargs(pipe, knobs, photo, last_photo, keyframes)
        kwargs["frame_rate"] = knobs.fps
        return kwargs

    def tiny_components(self) -> dict:
        import torch
        from diffusers import AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXVideoTransformer3DModel

        from ..tiny import t5_text

        torch.manual_seed(0)
        transformer = LTXVideoTransformer3DModel(
            in_channels=8, out_channels=8, patch_size=1, patch_size_t=1, num_attention_heads=4, attention_head_dim=8,
            cross_attention_dim=32, num_layers=1, caption_channels=32,
        )  # fmt: skip
        torch.manual_seed(0)
        vae = AutoencoderKLLTXVideo(
            in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8, 8, 8, 8),
            decoder_block_out_channels=(8, 8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
            decoder_layers_per_block=(1, 1, 1, 1, 1), spatio_temporal_scaling=(True, True, False, False),
            decoder_spatio_temporal_scaling=(True, True, False, False),
            decoder_inject_noise=(False, False, False, False, False), upsample_residual=(False, False, False, False),
            upsample_factor=(1, 1, 1, 1), timestep_conditioning=False, patch_size=1, patch_size_t=1,
            encoder_causal=True, decoder_causal=False,
        )  # fmt: skip
        tokenizer, text_encoder = t5_text()
        return {"transformer": transformer, "vae": vae, "scheduler": FlowMatchEulerDiscreteScheduler(),
                "text_encoder": text_encoder, "tokenizer": tokenizer}  # fmt: skip
