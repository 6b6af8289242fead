"""Stable Video Diffusion XT through StableVideoDiffusionPipeline: no text prompt; guidance rises
from `min_guidance_scale` (1.0) to `max_guidance_scale` over the frames; its VAE
(AutoencoderKLTemporalDecoder) has no tiled decode and decodes 8 frames at a time.

Two conditioning inputs stand in for the words it cannot read. `fps`: the rate it renders at, which
is the family's own (7; the check step keeps `knobs.fps` at the model's rate, and a request's other
fps is reached after the render by interpolation: the pipeline itself conditions on fps - 1, as SVD
was trained). `motion_bucket_id`: how much moves, 127 its usual; a request's `motion_intensity` sets
it (`motion_bucket`).
"""

from __future__ import annotations

from .base import Family

USUAL_BUCKET = 127  # the pipeline's default motion_bucket_id, and Stability's demos'


class SVD(Family):
    @staticmethod
    def motion_bucket(intensity: float | None) -> int:
        """SVD's motion_bucket_id for a motion_intensity (0.1 to 1.5, 1 the model's usual): linear
        through the usual, 127 x intensity, kept within 1 to 255 (the buckets' range in training).
        0.1 -> 13, 0.5 -> 64, 1 (or None) -> 127, 1.5 -> 190."""
        if intensity is None:
            return USUAL_BUCKET
        return max(1, min(255, round(USUAL_BUCKET * intensity)))

    def call_kwargs(self, pipe, knobs, photo, last_photo, keyframes=()) -> dict:
        kwargs = super().call_kwargs(pipe, knobs, photo, last_photo, keyframes)
        guidance = kwargs.pop("guidance_scale")
        kwargs.update(max_guidance_scale=guidance, min_guidance_scale=min(1.0, guidance), fps=knobs.fps,
                      motion_bucket_id=self.motion_bucket(knobs.motion_intensity), decode_chunk_size=8)  # fmt: skip
        return kwargs

    def tiny_components(self) -> dict:
        import torch
        from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler, UNetSpatioTemporalConditionModel

        from ..tiny import clip_vision

        torch.manual_seed(0)
        unet = UNetSpatioTemporalConditionModel(
            block_out_channels=(32, 64), layers_per_block=2, sample_size=32, in_channels=8, out_channels=4,
            down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
            up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"), cross_attention_dim=32,
            num_attention_heads=8, projection_class_embeddings_input_dim=96, addition_time_embed_dim=32,
        )  # fmt: skip
        scheduler = EulerDiscreteScheduler(
            beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", interpolation_type="linear",
            num_train_timesteps=1000, prediction_type="v_prediction", sigma_max=700.0, sigma_min=0.002, steps_offset=1,
            timestep_spacing="leading", timestep_type="continuous", use_karras_sigmas=True,
        )  # fmt: skip
        torch.manual_seed(0)
        vae = AutoencoderKLTemporalDecoder(
            block_out_channels=[32, 64], in_channels=3, out_channels=3,
            down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"], latent_channels=4,
        )  # fmt: skip
        # SVD resizes the photo to CLIP's 224x224 itself, whatever the processor says.
        image_encoder, feature_extractor = clip_vision(hidden=32, image_size=224, patch_size=14)
        return {"unet": unet, "image_encoder": image_encoder, "scheduler": scheduler, "vae": vae,
                "feature_extractor": feature_extractor}  # fmt: skip
