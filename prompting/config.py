"""The refiner's data: configs/refiner.toml, the system prompts in configs/prompts/, the offline
refiner's word tables in configs/refiner_words.toml; and, read as data from the engine's files
(prompting never imports the engine), each family's frame and fps rules (configs/models.toml) and the
words for the style knobs (configs/styles.toml); and the checks of a caller's choices against them (a
family it knows, a storyboard's size, a style, palette, camera motion or intensity it can honour)."""

from __future__ import annotations

import math
import tomllib
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from .errors import InvalidChoice, InvalidStoryboard, UnknownFamily
from .schema import CAMERA_MOTIONS, MAX_REFERENCES, MAX_SECONDS_EACH, MAX_SEGMENTS, MIN_SEGMENTS, MOTION_TAGS

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


class Defaults(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float = Field(gt=0)
    max_input_chars: int = Field(ge=10)
    max_tokens: int = Field(ge=50)
    family: str


class StoryboardDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt_file: str
    reply_tokens_per_segment: int = Field(ge=50)
    reply_tokens_extra: int = Field(ge=0)


class FamilyStyle(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    prompt_file: str
    word_budget: int = Field(ge=10)
    quality: str
    negative: str
    guidance: tuple[float, float] | None = Field(None, description="the guidance_scale advice may name; None: the "
                                                 "family takes no guidance and advice leaves it out")  # fmt: skip


class AdviceDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    fps: tuple[int, int]


class FamilyBounds(BaseModel):
    """What a family can make, as its advice must respect: frame counts frame_step * n + frame_offset
    (n >= 1, as the engine rounds them) from `frames[0]` to `frames[1]`, playback fps in `fps`, and
    guidance in `guidance` (None: it takes none)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    family: str
    frame_step: int = Field(ge=1)
    frame_offset: int = Field(ge=0)
    frames: tuple[int, int]
    fps: tuple[int, int]
    guidance: tuple[float, float] | None

    @property
    def frame_rule(self) -> str:
        return "any count of" if self.frame_step == 1 else f"{self.frame_step}n+{self.frame_offset}"

    def frames_on_rule(self, value: float) -> int:
        """`value` moved to the nearest frame count of the rule, within `frames`."""
        step, offset = self.frame_step, self.frame_offset
        n = round((value - offset) / step)
        low, high = ((bound - offset) // step for bound in self.frames)
        return min(max(n, low), high) * step + offset


# The offline refiner's word tables: configs/refiner_words.toml.
TABLES = ("camera", "tags", "avoid", "subjects", "camera_phrases", "tag_intensity", "storyboard", "references")


@cache
def words() -> dict[str, dict]:
    data = tomllib.loads((CONFIG_DIR / "refiner_words.toml").read_text(encoding="utf-8"))
    unknown = set(data) ^ set(TABLES)
    if unknown:
        raise ValueError(f"configs/refiner_words.toml: unknown or missing tables {sorted(unknown)}")
    return data


@cache
def looks() -> dict:
    """configs/styles.toml, read as data: the words the engine adds to a prompt for a style, a colour
    palette and a motion intensity, per dialect (the engine's i2v/phrasing.py checks the file; the
    refiner writes the same sentences, so the engine need not add them again)."""
    return tomllib.loads((CONFIG_DIR / "styles.toml").read_text(encoding="utf-8"))


@cache
def _config() -> dict:
    return tomllib.loads((CONFIG_DIR / "refiner.toml").read_text(encoding="utf-8"))


@cache
def defaults() -> Defaults:
    return Defaults(**_config()["defaults"])


@cache
def storyboard_defaults() -> StoryboardDefaults:
    return StoryboardDefaults(**_config()["storyboard"])


@cache
def advice_defaults() -> AdviceDefaults:
    return AdviceDefaults(**_config()["advice"])


@cache
def styles() -> dict[str, FamilyStyle]:
    return {fid: FamilyStyle(id=fid, **entry) for fid, entry in _config()["families"].items()}


def style(family: str) -> FamilyStyle:
    known = styles()
    if family not in known:
        raise UnknownFamily("refiner.unknown_family", family=family, known=", ".join(known))
    return known[family]


@cache
def _models() -> dict[str, dict]:
    return tomllib.loads((CONFIG_DIR / "models.toml").read_text(encoding="utf-8"))["families"]


@cache
def bounds(family: str) -> FamilyBounds:
    """`family`'s frame rule and range and fps (configs/models.toml, read as data: the engine's own
    defaults there, min_frames 1, frame_step 1, frame_offset 0), and its guidance range
    (configs/refiner.toml). The fps range is [advice] fps, reaching down to the family's own fps where
    that is lower (SVD makes 7). An unknown family raises UnknownFamily."""
    chosen = style(family)
    model = _models().get(family)
    if model is None:
        raise UnknownFamily("refiner.unknown_family", family=family, known=", ".join(_models()))
    step, offset = model.get("frame_step", 1), model.get("frame_offset", 0)
    # The fewest frames: one step (the engine's rounding never goes below n = 1), at least min_frames.
    low = max(step + offset, offset + step * math.ceil((model.get("min_frames", 1) - offset) / step))
    high = offset + step * ((model["max_frames"] - offset) // step)
    fps_low, fps_high = advice_defaults().fps
    return FamilyBounds(family=family, frame_step=step, frame_offset=offset, frames=(low, high),
                        fps=(min(fps_low, model["fps"]), fps_high), guidance=chosen.guidance)  # fmt: skip


def check_choices(references: int, style: str | None, color_palette: str | None, camera_motion: str | None,
                  motion_intensity: float | None) -> None:
    """Refuse choices the refiner cannot honour (a caller's mistakes): more than MAX_REFERENCES
    references, a style or palette it has no words for, an unknown camera motion, an intensity off
    its 0-1 scale (the request's 0.1-1.5 is the caller's to map onto it)."""
    if references > MAX_REFERENCES:
        raise InvalidChoice("refiner.too_many_references", count=references, limit=MAX_REFERENCES)
    for kind, value, known in (("refiner.unknown_style", style, looks()["styles"]),
                               ("refiner.unknown_palette", color_palette, looks()["palettes"]),
                               ("refiner.unknown_camera", camera_motion, CAMERA_MOTIONS)):  # fmt: skip
        if value is not None and value not in known:
            raise InvalidChoice(kind, value=str(value), known=", ".join(known))
    if motion_intensity is not None:
        number = isinstance(motion_intensity, (int, float)) and not isinstance(motion_intensity, bool)
        if not (number and 0.0 <= motion_intensity <= 1.0):
            raise InvalidChoice("refiner.bad_intensity", value=str(motion_intensity))


def check_storyboard(segments: int, seconds_each: float) -> None:
    """Refuse a storyboard the video cannot be made of: 2 to 32 segments of more than 0 and at most 60 s."""
    if isinstance(segments, bool) or not isinstance(segments, int):
        raise TypeError(f"segments must be an int, not {type(segments).__name__}")
    if segments < MIN_SEGMENTS:
        raise InvalidStoryboard("storyboard.too_few", segments=segments, low=MIN_SEGMENTS)
    if segments > MAX_SEGMENTS:
        raise InvalidStoryboard("storyboard.too_many", segments=segments, high=MAX_SEGMENTS)
    number = isinstance(seconds_each, (int, float)) and not isinstance(seconds_each, bool)
    if not (number and math.isfinite(seconds_each) and 0 < seconds_each <= MAX_SECONDS_EACH):
        raise InvalidStoryboard("storyboard.bad_seconds", seconds=str(seconds_each), limit=MAX_SECONDS_EACH)


def _read_prompt(name: str) -> str:
    text = (CONFIG_DIR / "prompts" / name).read_text(encoding="utf-8")
    # The first line is an HTML comment saying where the prompt came from; the model need not see it.
    lines = text.splitlines()
    if lines and lines[0].startswith("<!--"):
        lines = lines[1:]
    return "\n".join(lines).strip()


@cache
def system_prompt(family: str) -> str:
    """The family's system prompt with the reply format appended."""
    chosen = style(family)
    body = _read_prompt(chosen.prompt_file).replace("{word_budget}", str(chosen.word_budget))
    reply = _read_prompt("_format.md")
    reply = reply.replace("{camera_motions}", ", ".join(CAMERA_MOTIONS)).replace("{motion_tags}", ", ".join(MOTION_TAGS))
    return f"{body}\n\n{reply.replace('{{', '{').replace('}}', '}')}"


@cache
def storyboard_prompt(family: str) -> str:
    """The system prompt for a storyboard written for `family` (its word budget per segment)."""
    chosen = style(family)
    body = _read_prompt(storyboard_defaults().prompt_file).replace("{word_budget}", str(chosen.word_budget))
    return body.replace("{{", "{").replace("}}", "}")
