"""LTX-Video 0.9.5 through LTXConditionPipeline: photos at chosen frames (keyframes), and an end photo.

Every photo becomes an `LTXVideoCondition(image=..., frame_index=...)`: the first photo at frame 0,
each keyframe at its own frame, the last photo (if any) at the last frame, num_frames - 1. The
pipeline's rules on frame indices, for single photos (diffusers' pipeline_ltx_condition.py, and
Lightricks' own prepare_conditioning, which asserts 0 <= index <= num_frames - 1):
- frame 0: the photo's latent replaces the first latent frame; the video starts on it exactly.
- frame k > 0: the photo's latent joins the sequence as extra tokens placed at frame k (a soft
  keyframe the video passes through); any k from 1 to num_frames - 1 works, with no multiple of 8
  needed (only multi-frame video conditions need one, and none are made here).
- num_frames is 8n + 1 (the VAE's 8x temporal compression); height and width multiples of 32.
Refused, naming the value and the rule: a keyframe past num_frames - 1, a keyframe at frame 0 (the
first photo's), at the last frame when a last photo ends the video there, or two at one frame.
The VAE of 0.9.5 and later is timestep-aware: it decodes at `decode_timestep` with
`decode_noise_scale` of noise, and photo conditions get `image_cond_noise_scale` of noise (the
values diffusers' LTX-Video docs give for these VAEs). LTX-Video 0.9.7 and 0.9.8 (13B) ship as
this pipeline too and load here; their distilled variants want guidance 1 and few steps.
Folders: an LTXConditionPipeline, or an LTXPipeline (how 0.9.5 is published) whose VAE has
0.9.5's encoder blocks (LTXVideo095DownBlock3D).

Upscale 2 in latent space, as diffusers' LTX-Video docs make LTX-Video 0.9.7's videos (the
"multi-scale" pipeline of Lightricks' own configs): the call at the asked size ends in latents
(output_type="latent"); LTXLatentUpsamplePipeline (this pipeline's VAE and the latent upsampler)
doubles their height and width; a short second pass at twice the size starts from them
(`latents`, `denoise_strength`: 4 of a 10-step schedule, the docs' values) and decodes the frames,
every photo fitted again at twice the size. Its steps are counted after the first pass's.
Which checkpoints it fits: Lightricks/ltxv-spatial-upscaler-0.9.7 was published with LTX-Video
0.9.7 (13B), and Lightricks' 0.9.8 configs (13B, and the 2B distilled) load the same weights
(ltxv-spatial-upscaler-0.9.8 is a copy of it). It works on the VAE's un-normalised latents (the
pipeline undoes the VAE's per-channel statistics before it and applies them after), so it fits the
VAE it was trained with: 0.9.7's, whose design is 0.9.5's (diffusers' converter gives the two the
same VAE config: LTXVideo095DownBlock3D encoder, 128 latent channels), the VAE this family loads.
0.9.0 and 0.9.1 (the ltx-video family) have another encoder, so another latent space, and
LTXImageToVideoPipeline has no `denoise_strength` for a second pass: that family keeps
post-processing. Unconfirmed: that 0.9.5's trained VAE weights make exactly 0.9.7's latents
(Lightricks pair the upsampler with 0.9.7 and 0.9.8 only, and have no multi-scale config for the 2B
0.9.5). With this family's own hub id (0.9.5) it is the least tried pairing: judge it first, against
Lanczos, on a GPU; 0.9.7 and 0.9.8 folders are the pairing Lightricks ship.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from pydantic import Field

from ..errors import InvalidInput
from .ltx import LTX


class LTXCondition(LTX):
    decode_timestep: float = Field(ge=0, description="the timestep-aware VAE decodes at this timestep")
    decode_noise_scale: float = Field(ge=0, description="noise mixed into the latents before that decode")
    image_cond_noise_scale: float = Field(ge=0, description="noise added to the photos' latents at each step")
    upscale_num_inference_steps: int = Field(ge=1, description="the schedule of the second pass at twice the "
                                             "size, after the latent upsampler")  # fmt: skip
    upscale_denoise_strength: float = Field(gt=0, le=1, description="how much of that schedule the second "
                                            "pass runs, from the upsampled latents")  # fmt: skip

    def condition_frames(self, num_frames: int, has_last: bool, keyframes: Sequence[int]) -> list[int]:
        """The frame of every photo, first photo first, or the refusal that names the value and the rule."""
        last = num_frames - 1
        high = last - 1 if has_last else last  # the last frame a keyframe may take
        taken = {0: "keyframe.first_frame"} | ({last: "keyframe.last_frame"} if has_last else {})
        for frame in keyframes:
            if frame < 0 or frame > last:
                raise InvalidInput("request.keyframe_beyond", frame=frame, num_frames=num_frames)
            if frame in taken:
                raise InvalidInput(taken[frame], frame=frame, model=self.id, high=high)
            taken[frame] = "keyframe.twice"
        return sorted(taken)

    def check_conditions(self, num_frames, has_last, keyframes, segments) -> None:
        self.condition_frames(num_frames, has_last, keyframes)

    def call_kwargs(self, pipe, knobs, photo, last_photo, keyframes=()) -> dict:
        from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

        frames = self.condition_frames(knobs.num_frames, last_photo is not None, [frame for frame, _ in keyframes])
        photos = {0: photo, **dict(keyframes)}
        if last_photo is not None:
            photos[knobs.num_frames - 1] = last_photo
        kwargs = super().call_kwargs(pipe, knobs, photo, None, ())
        del kwargs["image"]  # the pipeline takes `conditions` or `image`, not both
        kwargs["conditions"] = [LTXVideoCondition(image=photos[frame], frame_index=frame) for frame in frames]
        kwargs.update(decode_timestep=self.decode_timestep, decode_noise_scale=self.decode_noise_scale,
                      image_cond_noise_scale=self.image_cond_noise_scale)  # fmt: skip
        return kwargs

    def latent_upscale_steps(self) -> int:
        # LTXConditionPipeline.get_timesteps: int(steps * denoise_strength) of the schedule's steps run
        steps = self.upscale_num_inference_steps
        return min(int(steps * self.upscale_denoise_strength), steps)

    def render_latent_upscaled(self, pipe, upsampler, first: dict, second: dict, watch):
        from diffusers import LTXLatentUpsamplePipeline

        # 1. The video at the asked size, as latents (normalised, as the pipeline's own latents are)
        latents = pipe(**{**first, "output_type": "latent"}).frames
        watch.check_cancel()
        # 2. Twice the height and width, in latent space
        upsample = LTXLatentUpsamplePipeline(vae=pipe.vae, latent_upsampler=upsampler)
        upsample.set_progress_bar_config(disable=True)
        latents = upsample(latents=latents, height=second["height"], width=second["width"],
                           output_type="latent").frames  # fmt: skip
        watch.check_cancel()
        # 3. A short second pass at twice the size from them, decoded to frames
        second = {**second, "latents": latents, "num_inference_steps": self.upscale_num_inference_steps,
                  "denoise_strength": self.upscale_denoise_strength}  # fmt: skip
        self.watch_steps(pipe, second, watch, after=first["num_inference_steps"])
        return pipe(**second)

    def claims(self, index: dict, folder: Path) -> bool:
        if index.get("_class_name") == self.pipeline:
            return True
        if index.get("_class_name") != "LTXPipeline":
            return False
        try:
            vae = json.loads((folder / "vae" / "config.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return False
        return (vae.get("down_block_types") or [None])[-1] == "LTXVideo095DownBlock3D"

    @staticmethod
    def tiny_vae():
        """0.9.5's VAE design (its encoder blocks, timestep-aware decoder) at 8 channels: 32x, 8x."""
        import torch
        from diffusers import AutoencoderKLLTXVideo

        torch.manual_seed(0)
        return AutoencoderKLLTXVideo(
            in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8, 8, 8, 8, 8),
            down_block_types=("LTXVideo095DownBlock3D",) * 4,
            # Doubling like the real (256, 512, 1024), so no up block needs a timestep-aware conv_in.
            decoder_block_out_channels=(8, 16, 32), layers_per_block=(1, 1, 1, 1, 1),
            decoder_layers_per_block=(1, 1, 1, 1), spatio_temporal_scaling=(True, True, True, True),
            decoder_spatio_temporal_scaling=(True, True, True), decoder_inject_noise=(False, False, False, False),
            downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
            upsample_residual=(True, True, True), upsample_factor=(2, 2, 2), timestep_conditioning=True,
            patch_size=4, patch_size_t=1, encoder_causal=True, decoder_causal=False, spatial_compression_ratio=32,
            temporal_compression_ratio=8,
        )  # fmt: skip

    def tiny_components(self) -> dict:
        return {**super().tiny_components(), "vae": self.tiny_vae()}
