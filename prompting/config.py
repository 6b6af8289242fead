"""The refiner's data: configs/refiner.toml, the system prompts in configs/prompts/, and the offline
refiner's word tables in configs/refiner_words.toml."""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from .errors import UnknownFamily
from .schema import CAMERA_MOTIONS, MOTION_TAGS

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


class Defaults(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float = Field(gt=0)
    max_input_chars: int = Field(ge=10)
    max_tokens: int = Field(ge=50)
    family: str


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
def styles() -> dict[str, FamilyStyle]:
    return {fid: FamilyStyle(id=fid, **entry) for fid, entry in _config()["families"].items()}


def style(family: str) -> FamilyStyle:
    known = styles()
    if family not in known:
        raise UnknownFamily("refiner.unknown_family", family=family, known=", ".join(known))
    return known[family]


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
