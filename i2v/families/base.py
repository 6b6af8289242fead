"""A model family: its rules as data (one table of configs/models.toml) and its quirks as code.

`Family` holds what every family shares and the defaults a room overrides: how a size and a frame
count are made to fit (`fit_size`, `max_frames_for`), the keyword arguments of one pipeline call
(`call_kwargs`), how denoising steps are watched (`step_hook`: the pipeline's `callback_on_step_end`,
or its scheduler's `step` where there is none), which `save_pretrained` folders are this family's
(`claims`), and a tiny random-weight model of the same shape for tests (`tiny_components`).
A family whose VAE latents a published x2 latent upsampler was trained on names it
(`latent_upscaler`): `latent_upsampler_folder` finds its weights, and the room's
`render_latent_upscaled` makes an upscale-2 video through it. A family that makes the video's sound
with it (`audio`, LTX-2) returns that sound from a call's output (`sound`).
A room (one file in this folder) subclasses it for one family or a few close ones.
This module knows nothing about requests' sources beyond `ModelSource`, or about the engine.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from messages import Message, note

if TYPE_CHECKING:
    from PIL import Image

    from ..audio import Audio
    from ..progress import StepWatch
    from ..request import GenerationRequest

FAMILY_MARKER = "_i2v_family"  # a key `i2v make-tiny` (and anyone) may add to model_index.json
LATENT_UPSAMPLER = "LTXLatentUpsamplerModel"  # the `_class_name` of a latent upsampler's config.json

log = logging.getLogger(__name__)


class Family(BaseModel):
    """One model family's rules (configs/models.toml) and, in subclasses, its code."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    room: str = Field(description="the class that holds this family's code: module:Class in i2v/families")
    label: str
    pipeline: str | None = Field(None, description="the diffusers pipeline class; None: the family renders itself")
    hub_id: str | None = None
    dtype: Literal["bfloat16", "float16", "float32"] = "float32"
    size_multiple: int = Field(ge=1)
    frame_step: int = Field(1, ge=1)
    frame_offset: int = Field(0, ge=0)
    max_frames: int = Field(ge=1)
    min_frames: int = Field(1, ge=1)
    size_rule: Literal["multiple", "fixed", "bucket"] = "multiple"
    fixed_size: tuple[int, int] | None = None
    height: int
    width: int
    num_frames: int
    fps: int
    num_inference_steps: int | None = None  # None for a family without a pipeline
    guidance_scale: float | None = None
    end_frame: bool = False
    keyframes: bool = Field(False, description="the pipeline takes photos at chosen frame indices")
    references: bool = Field(False, description="the pipeline takes reference images of subjects (people, objects, "
                             "a background) the video holds")  # fmt: skip
    audio: bool = Field(False, description="the pipeline makes the video's sound with it, in one call: the MP4 "
                        "carries it, a soundtrack is refused, and a video is never chained from several calls")  # fmt: skip
    long_video: bool = Field(False, description="one call makes a long clip (next-section prediction, diffusion "
                             "forcing): long requests are steered here")  # fmt: skip
    chains_well: bool = Field(True, description="segments started from the last frame hold together; false: a long "
                              "request is advised to use a long-video family")  # fmt: skip
    multi_prompt: bool = Field(False, description="one call takes every segment's prompt as its prompt "
                               "schedule, each over its share of the frames: segments are not chained, one seed "
                               "applies")  # fmt: skip
    text_prompt: bool = True
    negative_prompt: bool = Field(True, description="the pipeline reads a negative prompt (false: it would be ignored)")
    vae_tiling: bool = True
    preview: bool = Field(False, description="a motion preview of the photo itself, not a generated video")
    flow_shift: float | None = Field(None, gt=0, description="the scheduler's shift, set at load where the task "
                                     "takes its own (None: the checkpoint's)")  # fmt: skip
    latent_upscaler: str | None = Field(None, description="hub id of an x2 latent spatial upsampler trained on this "
                                        "family's VAE latents: upscale 2 is made inside the render when its weights "
                                        "are here; None: upscaling is post-processing only")  # fmt: skip

    # How denoising steps are seen: the pipeline's callback_on_step_end, or its scheduler's step.
    step_hook: ClassVar[Literal["callback", "scheduler"]] = "callback"
    # One video across several GPUs (`gpus` > 1, i2v/parallel.py): true where diffusers can split the
    # pipeline's transformer with context parallelism (its class has a `_cp_plan`) and a tiny run split
    # across two processes made the one-process video (Wan's rooms but VACE; LTX's plan fails in its
    # image-to-video pipelines: see ltx.py). The limits are Ulysses attention's (checks.py refuses the
    # rest): the video's tokens split in equal parts, and the heads too, or padded where the GPUs do
    # not divide them (diffusers' "Ulysses anything": the padding under the heads each GPU gets).
    context_parallel: ClassVar[bool] = False

    @model_validator(mode="after")
    def _room_upscales_in_latents(self):
        if self.latent_upscaler is not None and type(self).render_latent_upscaled is Family.render_latent_upscaled:
            raise ValueError(f"family {self.id!r} names a latent_upscaler, but its room has no render_latent_upscaled")
        return self

    @property
    def frame_rule(self) -> str:
        if self.frame_step == 1:
            return "any count"
        return f"{self.frame_step}n+{self.frame_offset}"

    @property
    def engine(self) -> Literal["diffusers", "camera"]:
        return "diffusers" if self.pipeline else "camera"

    def pipeline_class(self):
        import diffusers

        return getattr(diffusers, self.pipeline)

    def load_pipeline(self, location: str, dtype):
        """The pipeline from a hub id or a `save_pretrained` folder. A room whose published weights
        are spread over several repositories (FramePack, say) assembles them here."""
        pipe = self.pipeline_class().from_pretrained(location, dtype=dtype)
        if self.flow_shift is not None:
            config = dict(pipe.scheduler.config)
            key = "flow_shift" if "flow_shift" in config else "shift"
            pipe.scheduler = type(pipe.scheduler).from_config(config, **{key: self.flow_shift})
        return pipe

    # ------------------------------------------------------------------ sizes and frames
    def fit_size(self, height: int, width: int, asked: bool, source: ModelSource, notes: list[Message]) -> tuple[int, int]:
        """The size this family makes for `height` x `width` (`asked`: the person chose it): rounded
        down to the family's multiple, each change said in `notes`."""
        rounded = []
        for knob, value in (("height", height), ("width", width)):
            new = max(self.size_multiple, value // self.size_multiple * self.size_multiple)
            if new != value:
                notes.append(note("request.size_rounded", knob=knob, value=value, new=new, model=self.id,
                                  multiple=self.size_multiple))  # fmt: skip
            rounded.append(new)
        return rounded[0], rounded[1]

    def round_frames(self, num_frames: int, notes: list[Message]) -> int:
        """`num_frames` moved to the nearest count of the family's rule (4n+1, ...), said in `notes`."""
        step, offset = self.frame_step, self.frame_offset
        new = max(1, round((num_frames - offset) / step)) * step + offset
        if new != num_frames:
            notes.append(note("request.frames_rounded", value=num_frames, new=new, model=self.id, rule=self.frame_rule))
        return new

    def max_frames_for(self, source: ModelSource) -> int:
        return self.max_frames

    # ------------------------------------------------------------------ the pipeline call
    def prompt_slots(self, num_frames: int) -> int:
        """How many prompts one call of `num_frames` can follow in turn (a multi-prompt family's
        windows); 1 for the others, whose segments are calls of their own."""
        return 1

    def check_conditions(self, num_frames: int, has_last: bool, keyframes: Sequence[int], segments: int) -> None:
        """Refuse, in the check step (before any weights load), photos this family's pipeline cannot
        take: `has_last` an end photo (or loop), `keyframes` their frame indices, over `segments` calls
        (only the last ends on the end photo). Rooms with rules of their own override it."""

    def check_references(self, num_frames: int, count: int) -> None:
        """Refuse, in the check step, `count` reference images (photos and clips' sampled frames) that a
        call of `num_frames` cannot take. Rooms of families that take references override it."""

    def call_kwargs(self, pipe, knobs: GenerationRequest, photo: Image.Image, last_photo: Image.Image | None,
                    keyframes: Sequence[tuple[int, Image.Image]] = (),
                    references: Sequence[Image.Image] = ()) -> dict:  # fmt: skip
        """The keyword arguments of one pipeline call, in diffusers' names, for `knobs` (every default
        filled in) and the photos already fitted to the video's size: the first, the last (or None), and
        (frame index, photo) keyframes for families that take them (`keyframes` true). `references`,
        images of subjects fitted inside the video's size, are passed (by keyword) only to families that
        take them (`references` true), whose rooms override this; other rooms need not accept it."""
        import torch

        params = inspect.signature(pipe.__call__).parameters
        kwargs: dict[str, Any] = {
            "image": photo,
            "num_frames": knobs.num_frames,
            "num_inference_steps": knobs.num_inference_steps,
            "guidance_scale": knobs.guidance_scale,
            "generator": torch.Generator("cpu").manual_seed(knobs.seed),
            "output_type": "np",
        }
        if "height" in params:
            kwargs.update(height=knobs.height, width=knobs.width)
        if self.text_prompt:
            kwargs.update(prompt=knobs.prompt, negative_prompt=knobs.negative_prompt or None)
        if last_photo is not None:
            kwargs["last_image"] = last_photo
        return kwargs

    @staticmethod
    def count_steps_across(kwargs: dict, watch: StepWatch, total: int) -> Callable[[], None]:
        """`watch_steps` for a pipeline whose step index starts over in every window or section: its
        steps counted on across them, `total` in all. Returns an undo."""
        watch.total = total
        done = 0

        def on_step_end(pipeline, index, timestep, callback_kwargs):
            nonlocal done
            done += 1
            watch.step(done)
            return {}

        kwargs["callback_on_step_end"] = on_step_end
        return lambda: None

    def watch_steps(self, pipe, kwargs: dict, watch: StepWatch, after: int = 0) -> Callable[[], None]:
        """Report each denoising step to `watch` (whose cancel raises there, before the VAE decodes
        anything): through `callback_on_step_end`, or by wrapping the scheduler's `step` for families
        whose pipeline has no callback. `after`: steps already counted (a second pass's come after the
        first's). Returns an undo."""
        if self.step_hook == "callback":

            def on_step_end(pipeline, index, timestep, callback_kwargs):
                watch.step(after + index + 1)
                return {}

            kwargs["callback_on_step_end"] = on_step_end
            return lambda: None

        scheduler = pipe.scheduler
        original = scheduler.step

        def step(*args, **step_kwargs):
            out = original(*args, **step_kwargs)
            watch.step()
            return out

        scheduler.step = step
        return lambda: scheduler.__dict__.pop("step", None)

    # ------------------------------------------------------------------ x2 in latent space
    def latent_upscale_steps(self) -> int:
        """The denoising steps `render_latent_upscaled` adds after the call's own (its second pass)."""
        return 0

    def render_latent_upscaled(self, pipe, upsampler, first: dict, second: dict, watch: StepWatch):
        """The video at twice the size, through `upsampler` (this family's LTXLatentUpsamplerModel):
        `first` (the call at the asked size, steps watched) made as latents, upsampled x2, and made
        into frames by `second` (the call at twice the size, photos fitted to it). Returns the
        pipeline's output (`.frames`). Rooms of families with a `latent_upscaler` override it."""
        raise NotImplementedError(f"family {self.id!r} has no latent upsampler")

    def latent_upsampler_folder(self, upscaler_dir: Path | None, latent_channels: int | None) -> Path | None:
        """Where this family's latent upsampler is: a `save_pretrained` folder of LTXLatentUpsamplerModel
        in `upscaler_dir` (a subfolder, or its latent_upsampler/, in name order), else the Hugging Face
        cache's copy of `latent_upscaler` (its latent_upsampler/, or the repository's root); None when
        neither is here, or the family has none. A folder counts when its config.json is a spatial
        upsampler whose in_channels are `latent_channels` (the VAE's; None: not checked) and its
        weights are beside it."""
        if self.latent_upscaler is None:
            return None
        for folder in _upsampler_candidates(upscaler_dir, self.latent_upscaler):
            config = _config(folder)
            if config is None or config.get("_class_name") != LATENT_UPSAMPLER:
                continue
            if not config.get("spatial_upsample", True) or config.get("temporal_upsample", False):
                log.warning("skipping %s: a temporal latent upsampler, not a spatial one", folder)
                continue
            if latent_channels is not None and config.get("in_channels", 128) != latent_channels:
                log.warning("skipping %s: it takes %s latent channels, %s's VAE makes %d", folder,
                            config.get("in_channels", 128), self.id, latent_channels)  # fmt: skip
                continue
            if any(folder.glob("diffusion_pytorch_model*")):
                return folder
        return None

    def load_latent_upsampler(self, folder: Path, dtype):
        """The LTXLatentUpsamplerModel in `folder` (weights saved with a variant, like .bf16, too)."""
        from diffusers.pipelines.ltx.modeling_latent_upsampler import LTXLatentUpsamplerModel

        plain = [folder / f"diffusion_pytorch_model{ending}" for ending in (".safetensors", ".bin",
                                                                           ".safetensors.index.json")]  # fmt: skip
        variant = None
        if not any(path.is_file() for path in plain):
            found = [*sorted(folder.glob("diffusion_pytorch_model.*.safetensors")),
                     *sorted(folder.glob("diffusion_pytorch_model.*.bin"))]  # fmt: skip
            variant = found[0].name.split(".")[1] if found else None
        return LTXLatentUpsamplerModel.from_pretrained(folder, dtype=dtype, variant=variant)

    # ------------------------------------------------------------------ folders and tiny models
    def claims(self, index: dict, folder: Path) -> bool:
        """Whether a `save_pretrained` folder with this model_index.json holds this family."""
        return self.pipeline is not None and index.get("_class_name") == self.pipeline

    def tiny_components(self) -> dict:
        """The pipeline's components with tiny random weights (seed 0 before each), for tests."""
        raise NotImplementedError(f"family {self.id!r} has no tiny model")

    def sound(self, pipe, output) -> Audio | None:
        """The sound a family that makes its own (`audio` true) made with the frames of one pipeline
        call (`output`), at its rate; None for the others. Rooms of families with sound override it."""
        return None

    # ------------------------------------------------------------------ families that render themselves
    def render(self, knobs: GenerationRequest, photo: Image.Image, on_frame: Callable[[int], None],
               continuing: bool = False):  # fmt: skip
        """(frames, height, width, 3) uint8 frames, for a family without a pipeline (the camera engine).
        `continuing`: the photo is the last frame of the segment before, and the first frame is it."""
        raise NotImplementedError(f"family {self.id!r} renders through its diffusers pipeline")


def _upsampler_candidates(upscaler_dir: Path | None, repo: str) -> Iterator[Path]:
    """Folders that may hold a latent upsampler: the upscaler folder's subfolders, then the cache's copy of `repo`."""
    if upscaler_dir is not None and Path(upscaler_dir).is_dir():
        for folder in sorted(path for path in Path(upscaler_dir).iterdir() if path.is_dir()):
            yield folder
            yield folder / "latent_upsampler"
    from huggingface_hub import try_to_load_from_cache

    for name in ("latent_upsampler/config.json", "config.json"):
        found = try_to_load_from_cache(repo, name)
        if isinstance(found, str):
            yield Path(found).parent


def _config(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


class ModelSource(BaseModel):
    """Where one model's weights are: a family plus a hub id or a local folder (none for the camera)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    family: Family
    location: str | None  # hub id or absolute folder path; None for a family without weights
    local: bool

    @property
    def name(self) -> str:
        return self.location if self.local else self.family.id

    def component_config(self, component: str) -> dict | None:
        """A component's config.json, from the local folder or the Hugging Face cache, without loading weights."""
        if self.location is None:
            return None
        if self.local:
            path = Path(self.location) / component / "config.json"
        else:
            from huggingface_hub import try_to_load_from_cache

            found = try_to_load_from_cache(self.location, f"{component}/config.json")
            path = Path(found) if isinstance(found, str) else None
        if path is None or not path.is_file():
            return None
        return json.loads(path.read_text(encoding="utf-8"))
