"""The one knob set: what a person can ask for (`GenerationRequest`) and what they get back.

Everything else is derived from `GenerationRequest`'s fields: the checked request (the same knobs
with every default filled in), the result (`VideoResult` is the request as it ran, plus what came
of it), the planner's run shape (i2v/memory.py's `RunShape` takes its fields by name), the `i2v`
command's flags (`flag` below names the short spelling), the page's form and the JSON beside each
video. Adding a knob is one field here plus the code that uses it.

Both are pydantic models that reject unknown fields and bound every number, so a request that
reaches the engine is already sane; the family-specific rules (multiples, frame counts) are checked
by i2v/checks.py, which knows the model. Argument names are diffusers' own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from messages import Message

# The camera vocabulary shared with the prompt refiner; the camera engine renders every one.
CameraMotion = Literal[
    "static",
    "pan_left",
    "pan_right",
    "tilt_up",
    "tilt_down",
    "zoom_in",
    "zoom_out",
    "dolly_in",
    "dolly_out",
    "orbit_left",
    "orbit_right",
    "crane_up",
    "crane_down",
    "tracking",
    "handheld",
]
CAMERA_MOTIONS: tuple[str, ...] = CameraMotion.__args__  # type: ignore[attr-defined]

MAX_SEED = 2**32 - 1
MAX_REFERENCES = 4  # subjects a video holds (photos or clips); prompting/schema.py keeps its own, equal
Fit = Literal["crop", "pad"]
Strategy = Literal["none", "model", "group", "sequential"]  # where the weights live, fastest first
STRATEGIES: tuple[str, ...] = Strategy.__args__  # type: ignore[attr-defined]
MemoryStrategy = Literal["auto", "none", "model", "group", "sequential"]  # auto: the planner picks
Speed = Literal["exact", "fast", "turbo"]
SPEEDS: tuple[str, ...] = Speed.__args__  # type: ignore[attr-defined]
Quantize = Literal["none", "fp8"]
StepCache = Literal["none", "first_block", "taylorseer"]


class LoraChoice(BaseModel):
    """One LoRA to apply: a local .safetensors file, or a hub id with the file's name in it, and
    how strongly. `weight_2` is for Wan 2.2 A14B's second (low-noise) expert; left out, the same."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(min_length=1, max_length=1000,
                        description="a .safetensors file, or HUB_ID::FILE for a file of a Hugging Face repository")  # fmt: skip
    weight: float = Field(1.0, ge=-4.0, le=4.0, description="how strongly the LoRA applies (0: not at all)")
    weight_2: float | None = Field(None, ge=-4.0, le=4.0, description="Wan 2.2 A14B's second expert's weight")

    @property
    def name(self) -> str:
        """The file's name, for people and the metadata (never this machine's folders)."""
        return self.source.split("::", 1)[-1].replace("\\", "/").rsplit("/", 1)[-1]


class Segment(BaseModel):
    """One part of a long video: what happens in it, and its seed (left out: the video's seed plus
    the segment's index). It starts from the previous segment's last frame."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str = Field(max_length=4000, description="what happens in this segment")
    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="this segment's seed")

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value):
        return {"prompt": value} if isinstance(value, str) else value  # --segment "PROMPT", or ["...", ...] in JSON


class Keyframe(BaseModel):
    """A photo the video passes through at a chosen frame (families that take keyframes)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image: Path = Field(description="the photo")
    frame: int = Field(ge=0, le=1023, description="the frame index it stands at (0: the first frame)")


class Reference(BaseModel):
    """A subject the video holds (families that take references): a photo, or a short MP4 clip whose
    frames are sampled as references. `label` says who or what it is, as the prompt names it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Path = Field(description="a photo, or a short MP4 clip")
    label: str = Field("", max_length=200, description="who or what it is (\"the grey cat\"), as the prompt names it")


def style_name(value):
    """A style as people spell it ("3D", "Watercolor", "oil painting") in our vocabulary's spelling
    (anything else as it is, for the vocabulary's check to refuse)."""
    if isinstance(value, str):
        value = value.strip().lower().replace(" ", "_").replace("-", "_")
        return {"watercolor": "watercolour", "3d_animation": "3d", "oil": "oil_painting"}.get(value, value)
    return value


Style = Literal["realistic", "cinematic", "anime", "3d", "watercolour", "oil_painting", "pixel_art", "claymation"]
STYLES: tuple[str, ...] = Style.__args__  # type: ignore[attr-defined]
Palette = Literal["warm", "cool", "neutral"]
PALETTES: tuple[str, ...] = Palette.__args__  # type: ignore[attr-defined]
MIN_INTENSITY, MAX_INTENSITY = 0.1, 1.5

Factor = Literal[1, 2, 4]
MAX_LONG_SIDE, MAX_SHORT_SIDE = 3840, 2160  # an upscaled video is at most 4K UHD, either way round


def _flag(flag: str) -> dict:
    return {"flag": flag}


class GenerationRequest(BaseModel):
    """One video to make. A knob left at None takes the model family's default."""

    model_config = ConfigDict(extra="forbid")

    image: Path = Field(description="the photo (JPEG, PNG, WebP, ...)")
    prompt: str = Field("", max_length=4000, description="what should happen in the video")
    negative_prompt: str = Field("", max_length=4000, description="what to avoid")
    model: str = Field("camera", min_length=1, max_length=1000,
                       description="family id, 'camera' (no weights), or a local model folder")  # fmt: skip
    height: int | None = Field(None, ge=16, le=2160, description="pixels; rounded down to the model's multiple")
    width: int | None = Field(None, ge=16, le=3840, description="pixels; rounded down to the model's multiple")
    num_frames: int | None = Field(None, ge=1, le=1024, description="frames; moved to the model's rule (4n+1, ...)",
                                   json_schema_extra=_flag("--frames"))  # fmt: skip
    fps: int | None = Field(None, ge=1, le=60, description="frames per second of the video file (15 to 60 is what "
                            "people pick): the model makes its own fps and the motion keeps its speed, the frames "
                            "between interpolated where it makes fewer, dropped evenly where more; left out: the "
                            "model's own (times interpolate)")  # fmt: skip
    num_inference_steps: int | None = Field(None, ge=1, le=200, description="denoising steps",
                                            json_schema_extra=_flag("--steps"))  # fmt: skip
    guidance_scale: float | None = Field(None, ge=0.0, le=30.0, description="how closely to follow the prompt",
                                         json_schema_extra=_flag("--guidance"))  # fmt: skip
    seed: int | None = Field(None, ge=0, le=MAX_SEED,
                             description="same seed and settings give the same video; left out: a random one, reported")  # fmt: skip
    camera_motion: CameraMotion = Field("static", description="the camera move: rendered by the camera engine, said "
                                        "in the prompt of a model that reads one; static: none asked",
                                        json_schema_extra=_flag("--camera"))  # fmt: skip
    last_image: Path | None = Field(None, description="a photo to end on (models that take one)")
    fit: Fit = Field("crop", description="how the photo meets the video's aspect: center crop, or pad with black")
    memory_strategy: MemoryStrategy = Field(
        "auto", description="where the weights live: auto (the planner picks from GPU memory), none (all on the "
        "GPU), or model / group / sequential CPU offload", json_schema_extra=_flag("--offload"),
    )  # fmt: skip
    vae_tiling: bool = Field(False, description="decode (and encode) the video in tiles: less memory, a bit slower")
    gpus: int = Field(1, ge=1, le=8, description="how many GPUs this one video may use: more than 1 splits it across "
                      "them with diffusers' context parallelism, one process per GPU (the Wan families but VACE; "
                      "each GPU holds every weight)")  # fmt: skip
    loras: list[LoraChoice] = Field(default_factory=list, max_length=8,
                                    description="LoRAs to apply (families whose pipeline takes them)",
                                    json_schema_extra=_flag("--lora"))  # fmt: skip
    speed: Speed = Field("exact", description="exact: the model as published; fast: fp8 weights, compiled blocks "
                         "and a step cache where they apply; turbo: the family's step-distilled weights")  # fmt: skip
    quantize: Quantize | None = Field(None, description="the denoiser's weights: none (as published) or fp8 "
                                      "(GPUs of compute 8.9 and newer); left out: from speed")  # fmt: skip
    compile: bool | None = Field(None, description="compile the denoiser's repeated blocks (minutes of warm-up once, "
                                 "cached); left out: from speed")  # fmt: skip
    step_cache: StepCache | None = Field(None, description="reuse the denoiser's work between steps: none, "
                                         "first_block or taylorseer; left out: from speed")  # fmt: skip

    segments: list[Segment] = Field(default_factory=list, max_length=32,
                                    description="a long video: one prompt per segment, in order, each starting from "
                                    "the last frame of the one before; left out: one segment of `prompt`",
                                    json_schema_extra=_flag("--segment"))  # fmt: skip
    duration: float | None = Field(None, gt=0, le=600, description="seconds of video: as many segments as that takes "
                                   "(with one prompt, each segment continues it)")  # fmt: skip
    keep_segments: bool = Field(False, description="a stopped long video keeps its finished segments as a video")
    loop: bool = Field(False, description="end on the first photo, so the video loops (models that take an end frame)")
    keyframes: list[Keyframe] = Field(default_factory=list, max_length=16,
                                      description="photos at chosen frames (models that take keyframes)",
                                      json_schema_extra=_flag("--keyframe"))  # fmt: skip
    interpolate: Factor = Field(1, description="make 2 or 4 times the frames between the model's, at 2 or 4 times "
                                "the fps: the same duration, smoother motion (with fps: at least this factor, then "
                                "timed to that fps)")  # fmt: skip
    upscale: Factor = Field(1, description="2 or 4 times the width and height (at most 3840x2160)")

    references: list[Reference] = Field(default_factory=list, max_length=MAX_REFERENCES,
                                        description="subjects to hold (photos or short MP4 clips), each with a label "
                                        "(models that take references)", json_schema_extra=_flag("--reference"))  # fmt: skip
    template: str | None = Field(None, max_length=64, description="a motion template (`i2v templates` lists them): "
                                 "its motion phrasing, camera move, intensity, and suggested frames and guidance")  # fmt: skip
    soundtrack: Path | None = Field(None, description="an audio file laid under the video: trimmed or looped to "
                                    "its length (models that make no sound of their own)")  # fmt: skip
    style: Style | None = Field(None, description="the look: realistic, cinematic, anime, 3d, watercolour, "
                                "oil_painting, pixel_art or claymation (prompt phrasing)")  # fmt: skip
    color_palette: Palette | None = Field(None, description="warm, cool or neutral colours (prompt phrasing; a gentle "
                                          "colour grade of the frames for models that read no prompt)")  # fmt: skip
    motion_intensity: float | None = Field(None, ge=MIN_INTENSITY, le=MAX_INTENSITY,
                                           description="how much moves, 0.1 (barely) to 1.5 (a lot); 1 is the model's "
                                           "usual")  # fmt: skip

    @field_validator("style", mode="before")
    @classmethod
    def _style_spelling(cls, value):
        return style_name(value)

    @classmethod
    def knobs(cls) -> list[str]:
        """The names of every knob, in order."""
        return list(cls.model_fields)


class LeverReport(BaseModel):
    """One speed lever a run asked for: whether it was applied, and why (or why not)."""

    lever: Literal["turbo", "quantize", "compile", "step_cache"]
    value: str
    applied: bool
    reason: Message | None = None


class VideoResult(GenerationRequest):
    """A finished video: the request as it ran (every default filled in, every rule applied: the
    knobs above hold the values used) and what came of it. `num_frames`, `fps`, `width` and `height`
    are the file's, after chaining, interpolation and upscaling; `segments` lists each segment's
    prompt and seed, and `segment_frames` the frames the model made for each."""

    num_frames: int = Field(ge=1)
    height: int = Field(ge=16, le=MAX_LONG_SIDE)
    width: int = Field(ge=16, le=MAX_LONG_SIDE)
    segment_frames: int | None = Field(None, description="frames the model made for each segment")
    interpolation: Literal["optical_flow", "rife"] | None = Field(None, description="how frames were interpolated")
    upscaler: str | None = Field(None, description="what upscaled the video: an upscaler file's name, or lanczos")
    has_audio: bool = Field(False, description="the MP4 carries a sound track")
    audio: Literal["generated", "soundtrack"] | None = Field(None, description="where its sound came from: made "
                                                             "with the video by the model, or the soundtrack file")  # fmt: skip

    path: Path
    metadata_path: Path
    family: str
    engine: Literal["diffusers", "camera"]
    label: str
    preview: bool = Field(description="True for the camera engine: a camera-motion preview, not a generated video")
    seconds: float
    device: str
    adjustments: list[Message] = Field(default_factory=list, description="values the engine changed, and why")
    levers: list[LeverReport] = Field(default_factory=list, description="the speed levers asked for: applied or not, and why")

    def metadata(self) -> dict:
        """What travels with the video (the JSON beside it and the MP4's comment): the result,
        with file names instead of this machine's paths."""
        data = self.model_dump(mode="json", exclude={"path", "metadata_path"})
        data["file"] = self.path.name
        if "/" in self.model or "\\" in self.model:  # a local model folder: its name only
            data["model"] = self.model.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
        data["image"] = self.image.name
        data["last_image"] = self.last_image.name if self.last_image else None
        data["keyframes"] = [{"image": keyframe.image.name, "frame": keyframe.frame} for keyframe in self.keyframes]
        data["references"] = [{"file": ref.source.name, "label": ref.label} for ref in self.references]
        data["soundtrack"] = self.soundtrack.name if self.soundtrack else None
        data["loras"] = [{"file": lora.name, "weight": lora.weight, "weight_2": lora.weight_2} for lora in self.loras]
        return data
