"""The refiner's data: configs/refiner.toml, the system prompts in configs/prompts/, and the offline
refiner's word tables in configs/refiner_words.toml; and the checks of a caller's choices against it
(a family it knows, a storyboard's size)."""

from __future__ import annotations

import math
import tomllib
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from .errors import InvalidStoryboard, UnknownFamily
from .schema import CAMERA_MOTIONS, MAX_SECONDS_EACH, MAX_SEGMENTS, MIN_SEGMENTS, MOTION_TAGS

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
def styles() -> dict[str, FamilyStyle]:
    return {fid: FamilyStyle(id=fid, **entry) for fid, entry in _config()["families"].items()}


def style(family: str) -> FamilyStyle:
    known = styles()
    if family not in known:
        raise UnknownFamily("refiner.unknown_family", family=family, known=", ".join(known))
    return known[family]


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
