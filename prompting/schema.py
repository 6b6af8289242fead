"""RefinedPrompt and Storyboard: what the refiner gives back, whether an LLM or the offline rules wrote it.

`LLMReply` is the part an LLM fills in (and the JSON schema it is asked to follow); RefinedPrompt
adds where it came from and what went wrong (`Provenance`). A Storyboard is one prompt per segment of
a long video, with the same provenance; `StoryboardReply` is its LLM part. Every field is bounded, so
nothing an LLM writes can push a value out of range; suggestions are advisory, and the refiner moves
them into the family's own bounds (prompting/advice.py) before a result leaves it.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StringConstraints, field_validator

from messages import Message

# The camera vocabulary; the engine's camera engine renders every one of these. i2v/request.py spells
# out the same list (neither package imports the other); tests/test_refiner.py keeps them equal.
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

MotionTag = Literal["slow_motion", "fast_motion", "loop", "subtle", "dynamic", "smooth", "timelapse"]
MOTION_TAGS: tuple[str, ...] = MotionTag.__args__  # type: ignore[attr-defined]

Source = Literal["llm", "offline"]

# A long video's segments. i2v/request.py bounds GenerationRequest.segments the same way (neither
# package imports the other); tests/test_storyboard.py keeps them equal. One segment is no storyboard:
# that is a single refined prompt.
MIN_SEGMENTS, MAX_SEGMENTS = 2, 32
# A request's reference photos (i2v/request.py bounds GenerationRequest.references the same way;
# tests/test_refiner_issue15.py keeps them equal): one subject each.
MAX_REFERENCES = 4
MAX_SECONDS_EACH = 60.0  # a segment is one run of the video model: 2-10 s in practice
PROMPT_CHARS = 3000  # the longest prompt anything here holds: a refined prompt, a storyboard's segment
SegmentPrompt = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=PROMPT_CHARS)]


def _token(value: object) -> object:
    """'Zoom In' / 'zoom-in' / 'zoom in' -> 'zoom_in'; other types pass through for pydantic to judge."""
    if isinstance(value, str):
        return re.sub(r"[\s\-]+", "_", value.strip().lower())
    return value


class Suggestions(BaseModel):
    """Advisory generation settings. In a result they are within the family's bounds (prompting/advice.py);
    `clamped` narrows them further, to a caller's own bounds."""

    model_config = ConfigDict(extra="ignore")

    num_frames: int | None = Field(None, ge=1, le=1024)
    fps: int | None = Field(None, ge=1, le=60)
    guidance_scale: float | None = Field(None, ge=0.0, le=30.0)

    def clamped(self, **bounds: tuple[float, float]) -> Suggestions:
        """These suggestions forced into `bounds` (name=(low, high)); names without bounds are dropped."""
        values = {}
        for name, (low, high) in bounds.items():
            value = getattr(self, name)
            if value is not None:
                values[name] = type(value)(min(max(value, low), high))
        return Suggestions(**values)


class LLMReply(BaseModel):
    """The JSON object the LLM is asked for."""

    model_config = ConfigDict(extra="ignore")

    prompt: str = Field(min_length=1, max_length=PROMPT_CHARS)
    negative_prompt: str = Field("", max_length=1000)
    camera_motion: CameraMotion = "static"
    motion_tags: list[MotionTag] = Field(default_factory=list, max_length=7)
    motion_intensity: float = Field(0.5, ge=0.0, le=1.0)
    subjects: list[str] = Field(default_factory=list, max_length=8)
    suggestions: Suggestions = Field(default_factory=Suggestions)
    # The advice as the LLM wrote it, before any bounds: what the notes on bounding it name.
    _advised: dict = PrivateAttr(default_factory=dict)

    @field_validator("camera_motion", mode="before")
    @classmethod
    def _camera_token(cls, value):
        return _token(value)

    @field_validator("motion_tags", mode="before")
    @classmethod
    def _tag_tokens(cls, value):
        if isinstance(value, list):
            return list(dict.fromkeys(_token(v) for v in value))
        return value

    @field_validator("subjects")
    @classmethod
    def _short_subjects(cls, value: list[str]) -> list[str]:
        return [s.strip()[:60] for s in value if s.strip()]

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("prompt is blank")
        return value.strip()


def reply_json_schema() -> dict:
    """A flat JSON schema for LLMReply: enums inline, no $refs, so small servers' grammars accept it."""
    nullable_int = {"anyOf": [{"type": "integer"}, {"type": "null"}]}
    return {
        "type": "object",
        "properties": {
            "prompt": {"type": "string", "minLength": 1, "maxLength": 800},  # ~130 words: over every budget
            "negative_prompt": {"type": "string", "maxLength": 200},
            "camera_motion": {"type": "string", "enum": list(CAMERA_MOTIONS)},
            "motion_tags": {"type": "array", "items": {"type": "string", "enum": list(MOTION_TAGS)}, "maxItems": 4},
            "motion_intensity": {"type": "number", "minimum": 0, "maximum": 1},
            "subjects": {"type": "array", "items": {"type": "string", "maxLength": 30}, "maxItems": 4},
            "suggestions": {
                "type": "object",
                "properties": {
                    "num_frames": nullable_int,
                    "fps": nullable_int,
                    "guidance_scale": {"anyOf": [{"type": "number"}, {"type": "null"}]},
                },
                "required": ["num_frames", "fps", "guidance_scale"],
                "additionalProperties": False,
            },
        },
        "required": [
            "prompt", "negative_prompt", "camera_motion", "motion_tags", "motion_intensity", "subjects", "suggestions",
        ],  # fmt: skip
        "additionalProperties": False,
    }


class Provenance(BaseModel):
    """Where a refiner's result came from and what went wrong: RefinedPrompt and Storyboard both carry it."""

    original: str = Field(description="the person's words, as given")
    language: str = Field(description="language of the input: en, zh, ja, ko, other, or empty")
    prompt_language: str = Field(
        "en", description="language of the prompts: 'en' once translated; the offline refiner keeps the person's words"
    )
    family: str = Field(description="the model family the prompts were written for")
    source: Source
    model: str | None = Field(None, description="the LLM that wrote it; None for the offline refiner")
    warnings: list[Message] = Field(default_factory=list, description="why a fallback happened, what was cut")
    seconds: float = Field(0.0, ge=0.0, description="how long the refinement took")

    @property
    def translated(self) -> bool:
        """Whether the prompts are in English, as the video models want them."""
        return self.prompt_language in ("en", "")


class RefinedPrompt(Provenance, LLMReply):
    """A refined, previewable video prompt and where it came from."""

    model_config = ConfigDict(extra="forbid")


class StoryboardReply(BaseModel):
    """The JSON object the LLM is asked for when it writes a storyboard. How many segments it holds is
    checked by the refiner, which asked for a number: too many are cut, too few are padded."""

    model_config = ConfigDict(extra="ignore")

    segments: list[SegmentPrompt] = Field(min_length=1, max_length=MAX_SEGMENTS)
    negative_prompt: str = Field("", max_length=1000)


def storyboard_json_schema(segments: int) -> dict:
    """A flat JSON schema for StoryboardReply with exactly `segments` prompts: servers with grammars
    (llama-server) then cannot give another count."""
    return {
        "type": "object",
        "properties": {
            "segments": {
                "type": "array",
                "items": {"type": "string", "minLength": 1, "maxLength": 800},  # as a refined prompt's
                "minItems": segments,
                "maxItems": segments,
            },
            "negative_prompt": {"type": "string", "maxLength": 200},
        },
        "required": ["segments", "negative_prompt"],
        "additionalProperties": False,
    }


class Storyboard(Provenance, StoryboardReply):
    """One English video prompt per segment of a long video, in order: the first sets the scene and
    starts the action, each later one continues from where the one before ended. The person previews
    and edits them before anything is rendered."""

    model_config = ConfigDict(extra="forbid")

    segments: list[SegmentPrompt] = Field(min_length=MIN_SEGMENTS, max_length=MAX_SEGMENTS,
                                          description="one prompt per segment, in order")  # fmt: skip
    negative_prompt: str = Field("", max_length=1000, description="what to avoid, in every segment")
    seconds_each: float = Field(gt=0, le=MAX_SECONDS_EACH, description="how long each segment lasts")

    @property
    def duration(self) -> float:
        """Seconds of video the storyboard describes."""
        return len(self.segments) * self.seconds_each
