"""Cleaning a person's text before anyone reads it, telling which language it is in, and whether a
prompt already says a sentence."""

from __future__ import annotations

import re
import unicodedata

from messages import Message, note

# Zero-width and direction marks, BOM, word joiner: invisible, and a way to smuggle text past a reader.
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u00ad]")


def clean(text: str, max_chars: int) -> tuple[str, list[Message]]:
    """`text` without control or zero-width characters, whitespace collapsed, cut to `max_chars`."""
    warnings: list[Message] = []
    stripped = _INVISIBLE.sub("", text)
    stripped = "".join(
        " " if ch in "\t\n\r" else ch for ch in stripped if ch in "\t\n\r" or unicodedata.category(ch)[0] != "C"
    )
    removed = sum(1 for ch in text if _INVISIBLE.match(ch) or (unicodedata.category(ch)[0] == "C" and ch not in "\t\n\r"))
    if removed:
        warnings.append(note("text.removed_characters", count=removed))
    stripped = re.sub(r"\s+", " ", stripped).strip()
    if len(stripped) > max_chars:
        warnings.append(note("text.cut_characters", length=len(stripped), limit=max_chars))
        stripped = stripped[:max_chars].rstrip()
    return stripped, warnings


def language(text: str) -> str:
    """'zh', 'ja', 'ko', 'en', 'other', or '' for no text: by script, which is all a prompt this short allows."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return ""
    kana = sum(1 for ch in letters if "\u3040" <= ch <= "\u30ff")
    hangul = sum(1 for ch in letters if "\uac00" <= ch <= "\ud7af" or "\u1100" <= ch <= "\u11ff")
    han = sum(1 for ch in letters if "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf")
    latin = sum(1 for ch in letters if ch.isascii())
    if kana:
        return "ja"
    if hangul > latin:
        return "ko"
    if han:
        return "zh"  # mixed Chinese and English counts as Chinese: it still needs translating
    if latin / len(letters) > 0.8:
        return "en"
    return "other"


def has_cjk(text: str) -> bool:
    return any("\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af" for ch in text)


def cut_words(text: str, budget: int) -> tuple[str, bool]:
    """`text` cut to `budget` words, ending at a sentence end where one is near."""
    words = text.split()
    if len(words) <= budget:
        return text, False
    cut = " ".join(words[:budget])
    end = max(cut.rfind(". "), cut.rfind("! "), cut.rfind("? "))
    if end > len(cut) * 0.6:
        cut = cut[: end + 1]
    return cut.rstrip(",;: "), True


def _plain(text: str) -> str:
    return " ".join(text.lower().split()).rstrip(".!?。！？ ")


def says(prompt: str, words: str) -> bool:
    """Whether `prompt` already holds `words` (any case, any spacing, its closing stop aside): the
    engine's test (i2v/phrasing.py's `_says`, copied: prompting does not import i2v), so a sentence
    the refiner counts as said is one the engine adds no more."""
    return _plain(words) in " ".join(prompt.lower().split())
