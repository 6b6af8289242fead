"""The offline refiner: no model, always available, honest about what it cannot do.

It finds camera and motion words and subjects in Chinese and English (word tables in
configs/refiner_words.toml), keeps the person's own words, adds the family's camera phrasing and
quality words and a default negative prompt, and says plainly in `warnings` that no LLM refined the
prompt (and, for non-English input, that it was not translated: `prompt_language` says which
language the prompt is still in). A storyboard for a long video is that prompt for the first segment
and the same prompt behind continuation phrasing for each later one. It knows nothing about LLMs or HTTP.
"""

from __future__ import annotations

import logging
import re
import tomllib
from functools import cache

from messages import Message, note

from .config import CONFIG_DIR, check_storyboard, defaults, style
from .schema import RefinedPrompt, Storyboard
from .text import language

# The word tables are data: configs/refiner_words.toml.
TABLES = ("camera", "tags", "avoid", "subjects", "camera_phrases", "tag_intensity", "storyboard")
_AVOID = re.compile(r"(?:不要|别|避免|无|no|without|avoid|don't|do not)\s*(\S+)", re.IGNORECASE)


@cache
def words() -> dict[str, dict]:
    data = tomllib.loads((CONFIG_DIR / "refiner_words.toml").read_text(encoding="utf-8"))
    unknown = set(data) ^ set(TABLES)
    if unknown:
        raise ValueError(f"configs/refiner_words.toml: unknown or missing tables {sorted(unknown)}")
    return data


def _word_bounds(text: str) -> set[int]:
    """Where words start and end in `text`: Chinese has no spaces, so it is segmented (jieba)."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    bounds = {0, len(text)}
    for _, start, end in jieba.tokenize(text):
        bounds.update((start, end))
    return bounds


def _find(text: str, table: dict[str, str], whole_words: bool = False) -> list[str]:
    """Values of every phrase in `table` found in `text`, in order of position, without repeats.
    English phrases match whole words; with `whole_words`, Chinese ones too (not 火 inside 火箭)."""
    lowered = text.lower()
    bounds = _word_bounds(lowered) if whole_words and not lowered.isascii() else None
    hits: list[tuple[int, str]] = []
    taken: list[tuple[int, int]] = []
    for phrase, value in sorted(table.items(), key=lambda pair: -len(pair[0])):
        start = lowered.find(phrase)
        while start != -1:
            end = start + len(phrase)
            if phrase.isascii():
                bounded = (start == 0 or not lowered[start - 1].isalnum()) and (
                    end == len(lowered) or not lowered[end].isalnum()
                )
            else:
                bounded = bounds is None or (start in bounds and end in bounds)
            if bounded and not any(s < end and start < e for s, e in taken):
                hits.append((start, value))
                taken.append((start, end))
            start = lowered.find(phrase, end)
    return list(dict.fromkeys(value for _, value in sorted(hits)))


def camera_motion(text: str) -> str | None:
    found = _find(text, words()["camera"])
    return found[0] if found else None


def motion_tags(text: str) -> list[str]:
    return _find(text, words()["tags"])


def avoided(text: str) -> list[str]:
    found = []
    for match in _AVOID.finditer(text):
        target = match.group(1).strip(",.;，。；!！").lower()
        for key, english in words()["avoid"].items():
            if target.startswith(key):
                found.append(english)
                break
    return list(dict.fromkeys(found))


def subjects(text: str) -> list[str]:
    return _find(text, words()["subjects"], whole_words=True)[:5]


def refine_offline(text: str, family: str, has_image: bool = False, reason: Message | None = None) -> RefinedPrompt:
    """Refine `text` with rules alone. `reason` says why no LLM was used; it leads the warnings."""
    chosen = style(family)
    lang = language(text)
    warnings = [reason] if reason else []
    warnings.append(note("offline.no_llm"))

    camera = camera_motion(text)
    tags = motion_tags(text)
    if not text:
        what = "the subject of the photo" if has_image else "the scene"
        body = f"Subtle, natural motion of {what}, as if alive."
        camera = camera or "dolly_in"
        tags = tags or ["subtle"]
        warnings.append(note("offline.no_prompt"))
    else:
        body = text.rstrip(" .。") + ("." if lang == "en" else "。" if lang == "zh" else ".")
    if lang not in ("en", ""):
        warnings.append(note("offline.untranslated", language=lang))
    camera = camera or "static"
    table = words()["tag_intensity"]
    intensity = min([table[t] for t in tags if t in table], default=0.5)
    if "dynamic" in tags or "fast_motion" in tags:
        intensity = max(table[t] for t in tags if t in table)

    parts = [*avoided(text), *(p.strip() for p in chosen.negative.split(","))]
    negative = ", ".join(dict.fromkeys(p for p in parts if p))
    prompt = " ".join(part for part in [body, words()["camera_phrases"][camera], _sentence(chosen.quality)] if part)
    return RefinedPrompt(
        prompt=prompt,
        negative_prompt=negative,
        camera_motion=camera,
        motion_tags=tags,
        motion_intensity=intensity,
        subjects=subjects(text),
        original=text,
        language=lang,
        prompt_language=lang or "en",  # the person's words, untranslated
        family=family,
        source="offline",
        model=None,
        warnings=warnings,
    )


def _sentence(phrase: str) -> str:
    phrase = phrase.strip().rstrip(".")
    return f"{phrase[:1].upper()}{phrase[1:]}." if phrase else ""


def storyboard_offline(
    text: str, segments: int, seconds_each: float, family: str | None = None, has_image: bool = False,
    reason: Message | None = None,
) -> Storyboard:
    """A storyboard of `segments` prompts from rules alone: segment 1 is `refine_offline(text)`'s
    prompt, each later one that prompt after a sentence that continues the shot (`continuation`).
    Deterministic. Refuses 1 or more than 32 segments (InvalidStoryboard); `reason` says why no LLM
    was used."""
    check_storyboard(segments, seconds_each)
    base = refine_offline(text, family or defaults().family, has_image, reason)
    later = [f"{continuation(i, segments, base.subjects)} {base.prompt}" for i in range(2, segments + 1)]
    prompts = [base.prompt, *later]
    # The storyboard's own note replaces the single prompt's "no LLM refined this prompt".
    warnings = [note("offline.storyboard") if w.code == "offline.no_llm" else w for w in base.warnings]
    return Storyboard(
        segments=prompts,
        negative_prompt=base.negative_prompt,
        seconds_each=seconds_each,
        original=base.original,
        language=base.language,
        prompt_language=base.prompt_language,
        family=base.family,
        source="offline",
        model=None,
        warnings=warnings,
    )


def continuation(index: int, segments: int, names: list[str]) -> str:
    """The sentence that opens segment `index` (2..segments) of a storyboard: it continues the shot
    with the same subjects (`names`), at a stage that progresses toward rest in the last segment."""
    table = words()["storyboard"]
    stages = table["stages"]
    stage = table["last"] if index == segments else stages[min(index - 2, len(stages) - 1)]
    named = names[:3] or [table["no_subject"]]
    who = named[0] if len(named) == 1 else f"{', '.join(named[:-1])} and {named[-1]}"
    return f"{table['lead']}, {stage}, {table['keep'].format(subjects=who)}."
