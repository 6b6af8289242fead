"""The refiner's advice (`suggestions`: frames, fps, guidance) bounded to what the family can make.

An LLM may advise anything: asked in so many words, the test LLM put num_frames 1000 and
guidance_scale 30 into its reply. The reply's schema pulls numbers into generic ranges (1-1024
frames, 1-60 fps, 0-30 guidance); here each is moved into the family's own: frames onto its rule
(4n+1, 8n+1, ...) from its fewest to its most frames, fps within [advice] fps (down to the family's
own fps), guidance within its range (configs/refiner.toml); a family without guidance gets no
guidance advice. Every move is said in a note, so the result says what the LLM advised and what the
advice became. Advice never changes a setting: the caller shows it and uses it only when asked.
This module knows nothing about LLMs, HTTP or the video engine.
"""

from __future__ import annotations

from messages import Message, note

from .config import bounds
from .schema import Suggestions


def bounded(suggestions: Suggestions, family: str, advised: dict | None = None) -> tuple[Suggestions, list[Message]]:
    """`suggestions` within `family`'s bounds (config.bounds), and a note for each value moved or left
    out, naming what the LLM advised (`advised`: its numbers before the schema's ranges, where known)."""
    rules = bounds(family)
    advised = advised or {}
    notes: list[Message] = []
    values = suggestions.model_dump()
    frames = values["num_frames"]
    if frames is not None:
        new = rules.frames_on_rule(frames)
        asked = advised.get("num_frames", frames)
        if new != asked:
            low, high = rules.frames
            notes.append(note("refiner.advice_frames", value=asked, family=family, rule=rules.frame_rule, low=low,
                              high=high, new=new))  # fmt: skip
        values["num_frames"] = new
    for name, limits in (("fps", rules.fps), ("guidance_scale", rules.guidance)):
        value = values[name]
        if value is None:
            continue
        asked = advised.get(name, value)
        if limits is None:
            notes.append(note("refiner.advice_dropped", name=name, value=asked, family=family))
            values[name] = None
            continue
        low, high = limits
        values[name] = type(value)(min(max(value, low), high))
        if values[name] != asked:
            notes.append(note("refiner.advice_bounded", name=name, value=asked, family=family, low=low, high=high,
                              new=values[name]))  # fmt: skip
    return Suggestions(**values), notes
