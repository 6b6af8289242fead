"""LTX-Video 0.9.8 13B distilled through LTXI2VLongMultiPromptPipeline: a long clip in one call,
window by window, a prompt per part of it.

The pipeline slides a temporal window (`temporal_tile_size` frames, `temporal_overlap` of them
shared with the window before) over the clip's latents: each window starts from the tail of the one
before and is crossfaded into it, and AdaIN (`adain_factor`) pulls each window towards the first
one's colour statistics; the photo (`cond_image`, at `cond_strength`) conditions the first frame. It changes prompt only where a window starts: `prompt_segments` gives window ranges a
prompt each. A request's segments are not chained here (`multi_prompt`): they are this one call's
prompt schedule, in order, each over an equal share of the windows (`prompt_schedule`), so there
can be no more segments than windows; the check step refuses more, and one seed applies to all.
The rules, from the pipeline's code (diffusers 0.42.1):
- Frames: 8n + 1 (the VAE's 8x temporal compression); height and width multiples of 32.
- Windows, in latent frames (`windows`: the pipeline's split_into_temporal_windows): a tile of
  temporal_tile_size // 8, a stride of (temporal_tile_size - temporal_overlap) // 8.
- The frame count comes out right for an overlap of 8 frames or of 24 and more: at 16 the
  crossfade of (overlap // 8 - 1) = 1 frame is a plain join, one latent frame too many per window,
  and at 0 one too few (checked when models.toml is read).
- Steps: the loop walks every timestep but the last: explicit `sigmas` of n + 1 values (a terminal
  0) make n steps ending at 0, while `num_inference_steps` n alone makes n - 1 steps of a plain
  FlowMatch schedule. So the room always passes `sigmas`: the distilled model's 8 steps from
  Lightricks' own long multi-prompt ComfyUI workflow (ltxv-13b-i2v-long-multi-prompt.json: 1.0 ...
  0.4219, 0.0, sampled with euler_ancestral), or for another step count that curve at as many
  points. The step index starts over in every window: steps are counted across windows.
- The scheduler: LTXEulerAncestralRFScheduler (ComfyUI's euler_ancestral RF), as the pipeline's
  docstring swaps it in "for ComfyUI parity", read from the checkpoint's own scheduler config at load.
- `seed` drives every window (seed + the window's first latent frame), so it is always passed: the
  pipeline's default, 0, would make every video alike. No end photo, no keyframes.
- Decoding is the pipeline's own, in spatial tiles (decode_horizontal_tiles x decode_vertical_tiles,
  decode_overlap latent pixels shared); a video too small for that many tiles gets fewer
  (`decode_tiles`), which the pipeline's arithmetic needs, and AdaIN is off for a one-latent-pixel
  video (32x32), whose per-channel spread is undefined (NaN).
Weights: Lightricks/LTX-Video-0.9.8-13B-distilled, the checkpoint the pipeline's docstring names
("LTX-Video-0.9.8-13B-distilled") and the only 0.9.8 repository Lightricks publish in diffusers'
format. Diffusers' LTX docs load it as an LTXConditionPipeline, so its model_index.json is taken to
name that class (not read here: no network): a local copy of it is then the ltx-video-condition
family's folder, as that room says of 0.9.7 and 0.9.8, unless it is marked for this family.
Folders: a `save_pretrained` folder of this pipeline (its `_class_name` is LTXI2VLongMultiPromptPipeline,
which no other family claims), or any folder whose model_index.json names `_i2v_family =
"ltx-video-long"` (a local copy of the published weights marked for this family).
"""

from __future__ import annotations

import logging

from pydantic import Field, model_validator

from ..errors import InvalidInput
from .ltx import LTX

TEMPORAL, SPATIAL = 8, 32  # the LTX VAE's compression: 8x in time, 32x in space

log = logging.getLogger(__name__)


class LTXLong(LTX):
    temporal_tile_size: int = Field(ge=TEMPORAL, description="frames one window denoises at once")
    temporal_overlap: int = Field(ge=TEMPORAL, description="frames a window shares with the one before")
    adain_factor: float = Field(ge=0, le=1, description="how far each window's colour statistics move to the first's")
    cond_strength: float = Field(gt=0, le=1, description="how firmly the photo holds the first frame")
    decode_horizontal_tiles: int = Field(ge=1, description="tiles across when the video is decoded")
    decode_vertical_tiles: int = Field(ge=1, description="tiles down when the video is decoded")
    decode_overlap: int = Field(ge=0, description="latent pixels neighbouring decode tiles share")
    sigmas: list[float] = Field(min_length=2, description="the distilled noise schedule, 1.0 down to a terminal 0")

    @model_validator(mode="after")
    def _windows_keep_the_frame_count(self):
        tile, overlap = self.temporal_tile_size, self.temporal_overlap
        if tile % TEMPORAL or overlap % TEMPORAL or overlap >= tile:
            raise ValueError(f"{self.id}: temporal_tile_size and temporal_overlap must be multiples of {TEMPORAL}, "
                             "the overlap smaller")  # fmt: skip
        if overlap == 2 * TEMPORAL:
            raise ValueError(f"{self.id}: a temporal_overlap of {overlap} frames makes a frame too many per window "
                             "(see the room): use 8, or 24 and more")  # fmt: skip
        if self.sigmas[0] != 1.0 or self.sigmas[-1] != 0.0 or self.sigmas != sorted(self.sigmas, reverse=True):
            raise ValueError(f"{self.id}: sigmas must fall from 1.0 to a terminal 0.0")
        if self.num_inference_steps != len(self.sigmas) - 1:
            raise ValueError(f"{self.id}: num_inference_steps must be the steps of sigmas ({len(self.sigmas) - 1})")
        return self

    # ------------------------------------------------------------------ windows and prompts
    def windows(self, num_frames: int) -> list[tuple[int, int]]:
        """The pipeline's windows for `num_frames`, as (start, end) latent frames (split_into_temporal_windows)."""
        latent, tile = (num_frames - 1) // TEMPORAL + 1, self.temporal_tile_size // TEMPORAL
        stride = tile - self.temporal_overlap // TEMPORAL
        windows, start = [], 0
        while True:
            end = min(start + tile, latent)
            windows.append((start, end))
            if end == latent:
                return windows
            start += stride

    def prompt_slots(self, num_frames: int) -> int:
        return len(self.windows(num_frames))  # the prompt changes only where a window starts

    def prompt_schedule(self, prompts: list[str], num_frames: int) -> list[dict]:
        """Each prompt over an equal share of the call's windows, in order (the pipeline's `prompt_segments`)."""
        count, parts = len(self.windows(num_frames)), len(prompts)
        return [{"start_window": index * count // parts, "end_window": (index + 1) * count // parts - 1,
                 "text": text} for index, text in enumerate(prompts)]  # fmt: skip

    def check_conditions(self, num_frames, has_last, keyframes, segments) -> None:
        windows = len(self.windows(num_frames))
        if segments > windows:
            raise InvalidInput("request.multi_prompt_windows", model=self.id, segments=segments, windows=windows,
                               num_frames=num_frames, tile=self.temporal_tile_size,
                               overlap=self.temporal_overlap)  # fmt: skip

    def sigmas_for(self, steps: int) -> list[float]:
        """The schedule of `steps` steps (steps + 1 sigmas): the published one, or its curve at `steps` points."""
        if steps == len(self.sigmas) - 1:
            return list(self.sigmas)
        import numpy as np

        published = np.linspace(0.0, 1.0, len(self.sigmas))
        return [round(float(s), 4) for s in np.interp(np.linspace(0.0, 1.0, steps + 1), published, self.sigmas)]

    def decode_tiles(self, latent: int, tiles: int) -> int:
        """The most tiles, up to `tiles`, that split `latent` pixels with each tile reaching past the shared
        decode_overlap (vae_decode_tiled's arithmetic: narrower tiles start before the video does)."""
        overlap = self.decode_overlap
        return next((n for n in range(tiles, 1, -1) if (latent + (n - 1) * overlap) // n > overlap), 1)

    # ------------------------------------------------------------------ the pipeline call
    def load_pipeline(self, location: str, dtype):
        from diffusers import LTXEulerAncestralRFScheduler

        scheduler = LTXEulerAncestralRFScheduler.from_pretrained(location, subfolder="scheduler")
        return self.pipeline_class().from_pretrained(location, scheduler=scheduler, dtype=dtype)

    def call_kwargs(self, pipe, knobs, photo, last_photo, keyframes=()) -> dict:
        prompts = [segment.prompt for segment in knobs.segments] or [knobs.prompt]
        latent_height, latent_width = knobs.height // SPATIAL, knobs.width // SPATIAL
        horizontal = self.decode_tiles(latent_width, self.decode_horizontal_tiles)
        vertical = self.decode_tiles(latent_height, self.decode_vertical_tiles)
        if (horizontal, vertical) != (self.decode_horizontal_tiles, self.decode_vertical_tiles):
            log.info("%dx%d is decoded in %dx%d tiles (%s's default %dx%d needs a larger video)", knobs.width,
                     knobs.height, horizontal, vertical, self.id, self.decode_horizontal_tiles,
                     self.decode_vertical_tiles)  # fmt: skip
        return {
            "prompt": prompts[0],  # the pipeline wants one; prompt_segments hold the schedule, "|" in a prompt kept
            "prompt_segments": self.prompt_schedule(prompts, knobs.num_frames),
            "negative_prompt": knobs.negative_prompt or None,
            "cond_image": photo,
            "cond_strength": self.cond_strength,
            "height": knobs.height,
            "width": knobs.width,
            "num_frames": knobs.num_frames,
            "frame_rate": knobs.fps,
            "guidance_scale": knobs.guidance_scale,
            "sigmas": self.sigmas_for(knobs.num_inference_steps),
            "seed": knobs.seed,
            "temporal_tile_size": self.temporal_tile_size,
            "temporal_overlap": self.temporal_overlap,
            "adain_factor": self.adain_factor if latent_height * latent_width > 1 else 0.0,
            "decode_horizontal_tiles": horizontal,
            "decode_vertical_tiles": vertical,
            "decode_overlap": self.decode_overlap,
            "output_type": "np",
        }

    def watch_steps(self, pipe, kwargs, watch, after: int = 0):
        steps = len(kwargs["sigmas"]) - 1  # in every window, whose step index starts over
        return self.count_steps_across(kwargs, watch, steps * len(self.windows(kwargs["num_frames"])))

    # ------------------------------------------------------------------ tiny model
    def tiny_components(self) -> dict:
        from .ltx_condition import LTXCondition

        # LTX-Video's tiny transformer and T5 with 0.9.5's VAE design (0.9.8 keeps it), and the
        # FlowMatch scheduler config the checkpoint publishes (load_pipeline reads the RF sampler from it)
        return {**super().tiny_components(), "vae": LTXCondition.tiny_vae()}
