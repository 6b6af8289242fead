"""SkyReels-V2 diffusion forcing (DF) image-to-video, 1.3B and 14B at 540p, through
SkyReelsV2DiffusionForcingImageToVideoPipeline.

Diffusion forcing gives every latent frame its own noise level, so one call makes a long clip in
windows: the first window of `base_num_frames` frames starts on the photo; each next one starts on
the last `overlap_history` frames of the one before (their latents, cleaned up with
`addnoise_condition` of noise so small errors do not pile up) and adds base - overlap new frames.
The call arguments are the SkyReels-V2 README's long-video settings, as data in models.toml:
base_num_frames 97 (540p), overlap_history 17, addnoise_condition 20, ar_step 0 (synchronous: every
frame of a window at the same noise level). Asynchronous mode (ar_step 5 with causal_block_size 5)
is slower and needs each window's latent frame count to be a multiple of the block size, so it is
not used. The scheduler's shift is the README's for I2V (5.0), set when the pipeline loads.
- Frames: 4n + 1 (the Wan VAE's 4x temporal compression) up to one window (97); past it, whole
  windows only, 97 + 80n (257 is 3 windows, the README's 30 s clip 737 is 9): diffusers 0.42.1
  schedules a last, shorter window as if it were a whole one and fails on an index (the original
  SkyReels-V2 code shortens it). Other counts are moved to the nearest, and the note says so.
- The denoising loop runs once per window with its step index starting over: steps are counted
  across windows (out of steps x windows).
- No end frame: the pipeline's `last_image` works for one window only; with more (a clip longer
  than base_num_frames) diffusers 0.42.1 fails on a shape (it counts the overlap latents as the end
  frame's), and long clips are what this family is for.
- The transformer takes the fps as a flag (16 or not): the video's fps is passed; it was trained at 24.
Folders: this pipeline's class, or the DF text-to-video class the checkpoints are published as
(the same weights); the 14B has 40 attention heads, the 1.3B 12.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field

from messages import Message, note

from .base import Family


class SkyReelsDF(Family):
    base_num_frames: int = Field(ge=5, description="frames of one window, the most the model sees at once")
    overlap_history: int = Field(ge=1, description="frames a window shares with the one before")
    addnoise_condition: float = Field(ge=0, le=60, description="noise on the carried-over frames")
    ar_step: int = Field(ge=0, description="0: synchronous; more: each block lags the one before by this many steps")

    @property
    def frame_rule(self) -> str:
        return f"4n+1 up to {self.base_num_frames}, then {self.base_num_frames}+{self.window_stride()}n (whole windows)"

    def window_stride(self) -> int:
        """Frames each window after the first adds: its latent frames less the overlap's, 4 frames each."""
        base = (self.base_num_frames - 1) // self.frame_step + 1
        overlap = (self.overlap_history - 1) // self.frame_step + 1
        return (base - overlap) * self.frame_step

    def round_frames(self, num_frames: int, notes: list[Message]) -> int:
        if num_frames <= self.base_num_frames:
            return super().round_frames(num_frames, notes)
        stride = self.window_stride()
        new = self.base_num_frames + round((num_frames - self.base_num_frames) / stride) * stride
        if new != num_frames:
            notes.append(note("request.frames_rounded", value=num_frames, new=new, model=self.id, rule=self.frame_rule))
        return new

    def windows(self, num_frames: int, temporal: int = 4) -> int:
        """How many windows the pipeline runs for `num_frames` (its own arithmetic, in latent frames)."""
        latent, base = (num_frames - 1) // temporal + 1, (self.base_num_frames - 1) // temporal + 1
        if num_frames <= self.base_num_frames:
            return 1
        overlap = (self.overlap_history - 1) // temporal + 1
        return 1 + (latent - base - 1) // (base - overlap) + 1

    def call_kwargs(self, pipe, knobs, photo, last_photo, keyframes=()) -> dict:
        kwargs = super().call_kwargs(pipe, knobs, photo, last_photo, keyframes)
        kwargs.update(base_num_frames=self.base_num_frames, overlap_history=self.overlap_history,
                      addnoise_condition=self.addnoise_condition, ar_step=self.ar_step, fps=knobs.fps)  # fmt: skip
        return kwargs

    def watch_steps(self, pipe, kwargs, watch, after: int = 0):
        windows = self.windows(kwargs["num_frames"], pipe.vae_scale_factor_temporal)
        watch.total = kwargs["num_inference_steps"] * windows  # exact when synchronous; see below
        done = started = 0

        def on_step_end(pipeline, index, timestep, callback_kwargs):
            nonlocal done, started
            if index == 0:  # a window begins: its own count of steps (more than the steps when asynchronous)
                started += 1
                watch.total = done + pipeline.num_timesteps * (windows - started + 1)
            done += 1
            watch.step(done)
            return {}

        kwargs["callback_on_step_end"] = on_step_end
        return lambda: None

    def claims(self, index: dict, folder: Path) -> bool:
        if index.get("_class_name") not in (self.pipeline, "SkyReelsV2DiffusionForcingPipeline"):
            return False
        try:
            config = json.loads((folder / "transformer" / "config.json").read_text(encoding="utf-8"))
            big = config["num_attention_heads"] >= 40
        except (OSError, json.JSONDecodeError, KeyError):
            big = "14b" in folder.name.lower()
        return big == ("14b" in self.id)

    def tiny_components(self) -> dict:
        import torch
        from diffusers import AutoencoderKLWan, SkyReelsV2Transformer3DModel, UniPCMultistepScheduler

        from ..tiny import t5_text

        torch.manual_seed(0)
        vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                               temperal_downsample=[False, True, True])  # fmt: skip
        tokenizer, text_encoder = t5_text(umt5=True)
        big = "14b" in self.id  # as the real ones: the 14B has 40 heads and no fps flag, the 1.3B 12 and one
        torch.manual_seed(0)
        transformer = SkyReelsV2Transformer3DModel(
            patch_size=(1, 2, 2), num_attention_heads=40 if big else 2, attention_head_dim=6 if big else 12,
            in_channels=16, out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
            qk_norm="rms_norm_across_heads", rope_max_seq_len=32, inject_sample_info=not big,
        )  # fmt: skip
        scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                            flow_shift=self.flow_shift)  # fmt: skip
        return {"transformer": transformer, "vae": vae, "scheduler": scheduler, "text_encoder": text_encoder,
                "tokenizer": tokenizer}  # fmt: skip
