"""User-facing words as data: a message is an id and its parameters; its text comes from a catalogue.

The engine and the refiner raise errors and write notes as `Message`s (their `str()` is English, for
logs and the command line); the studio renders them in the page's language with `render`. The
catalogues are `configs/messages/<language>.toml`, one line per id; a language that lacks an id falls
back to English. A parameter may itself be a Message (a rung of a plan inside a note), rendered in
the same language. This package knows no other part of the project: the engine and the refiner both
use it, and neither imports the other.
"""

from __future__ import annotations

import string
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, model_serializer

CATALOGUES = Path(__file__).resolve().parent.parent / "configs" / "messages"
LANGUAGES = ("en", "zh")
DEFAULT = "en"


class Message(BaseModel):
    """One thing to tell a person: `code` names the words, `params` fill them in."""

    model_config = ConfigDict(frozen=True, extra="ignore")  # "text" in stored JSON is ignored on reading

    code: str
    params: dict[str, Any] = {}

    def __str__(self) -> str:
        return render(self, DEFAULT)

    @model_serializer(mode="wrap")
    def _with_text(self, handler) -> dict:
        # Stored and sent with its English words, so a reader of the JSON needs no catalogue.
        return {**handler(self), "text": str(self)}


class MessageError(Exception):
    """An error whose words are a message: `message` holds its id and parameters, `str()` is English.
    The engine's, the refiner's and the studio's errors all are."""

    def __init__(self, code: str, **params: Any):
        self.message = Message(code=code, params=params)
        super().__init__(str(self.message))

    @property
    def code(self) -> str:
        return self.message.code

    def __reduce__(self):
        """Pickled as its class, id and parameters (Exception's own way rebuilds it from its English
        words, which are no id): a store's refusal crossing to another process keeps its words."""
        return _rebuilt, (type(self), self.message.code, self.message.params)


def _rebuilt(kind: type, code: str, params: dict) -> MessageError:
    return kind(code, **params)


def note(code: str, **params: Any) -> Message:
    return Message(code=code, params=params)


@cache
def catalogue(language: str) -> dict[str, str]:
    path = CATALOGUES / f"{language}.toml"
    if not path.is_file():
        return {}
    return tomllib.loads(path.read_text(encoding="utf-8"))


def language_of(value: str | None) -> str:
    """'zh-CN', 'zh_TW', 'zh' -> 'zh'; anything we have no words for -> English."""
    base = (value or "").replace("_", "-").split("-")[0].lower()
    return base if base in LANGUAGES else DEFAULT


def render(message: Message | str, language: str = DEFAULT) -> str:
    """`message` in `language` (English where that language lacks its words)."""
    if isinstance(message, str):
        return message
    template = catalogue(language).get(message.code) or catalogue(DEFAULT).get(message.code)
    if template is None:
        raise KeyError(f"no words for message {message.code!r} in configs/messages/{DEFAULT}.toml")
    params = {key: _param(value, language) for key, value in message.params.items()}
    return template.format_map(params)


def _param(value: Any, language: str) -> Any:
    if isinstance(value, Message):
        return render(value, language)
    if isinstance(value, dict) and "code" in value and "params" in value:  # a Message read back from JSON
        return render(Message.model_validate(value), language)
    if isinstance(value, (list, tuple)):
        return "; ".join(str(_param(v, language)) for v in value)
    return value


def placeholders(template: str) -> set[str]:
    """The names a template fills in: what every language's words for one id must agree on."""
    return {name.split(".")[0].split("[")[0] for _, name, _, _ in string.Formatter().parse(template) if name}


__all__ = ["DEFAULT", "LANGUAGES", "Message", "MessageError", "catalogue", "language_of", "note", "placeholders",
           "render"]  # fmt: skip
