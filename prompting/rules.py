"""The offline refiner: no model, always available, honest about what it cannot do.

It finds camera and motion words in Chinese and English, keeps the person's own words, adds the
family's camera phrasing and quality words and a default negative prompt, and says plainly in
`warnings` that no LLM refined the prompt (and, for non-English input, that it was not translated).
It knows nothing about LLMs or HTTP.
"""

from __future__ import annotations

import re

from .config import style
from .schema import RefinedPrompt
from .text import language

# Phrases that name a camera move, longest and most specific first within each language. A bare
# direction ("向右") is not a camera move: "猫向右转头" is the cat turning, not the camera.
CAMERA_WORDS: list[tuple[str, str]] = [
    # Chinese
    ("固定镜头", "static"), ("镜头固定", "static"), ("镜头不动", "static"), ("静止镜头", "static"),
    ("向左平移", "pan_left"), ("向左摇", "pan_left"), ("左移", "pan_left"), ("左摇", "pan_left"),
    ("向右平移", "pan_right"), ("向右摇", "pan_right"), ("右移", "pan_right"), ("右摇", "pan_right"),
    ("向上摇", "tilt_up"), ("上摇", "tilt_up"), ("仰拍", "tilt_up"),
    ("向下摇", "tilt_down"), ("下摇", "tilt_down"), ("俯拍", "tilt_down"),
    ("向左环绕", "orbit_left"), ("向右环绕", "orbit_right"), ("环绕", "orbit_left"),
    ("镜头上升", "crane_up"), ("升镜头", "crane_up"), ("镜头下降", "crane_down"), ("降镜头", "crane_down"),
    ("推近", "dolly_in"), ("推进", "dolly_in"), ("推镜头", "dolly_in"), ("靠近", "dolly_in"),
    ("拉远", "zoom_out"), ("拉镜头", "dolly_out"), ("后拉", "dolly_out"), ("后退", "dolly_out"),
    ("放大", "zoom_in"), ("变焦", "zoom_in"), ("缩小", "zoom_out"),
    ("跟拍", "tracking"), ("跟随", "tracking"), ("手持", "handheld"), ("晃动", "handheld"),
    # English
    ("camera static", "static"), ("static camera", "static"), ("static shot", "static"), ("locked off", "static"),
    ("still camera", "static"), ("camera still", "static"),
    ("pan left", "pan_left"), ("pans left", "pan_left"), ("panning left", "pan_left"),
    ("pan right", "pan_right"), ("pans right", "pan_right"), ("panning right", "pan_right"),
    ("tilt up", "tilt_up"), ("tilts up", "tilt_up"), ("tilt down", "tilt_down"), ("tilts down", "tilt_down"),
    ("zoom in", "zoom_in"), ("zooms in", "zoom_in"), ("zoom out", "zoom_out"), ("zooms out", "zoom_out"),
    ("dolly in", "dolly_in"), ("push in", "dolly_in"), ("pushes in", "dolly_in"), ("move closer", "dolly_in"),
    ("dolly out", "dolly_out"), ("pull back", "dolly_out"), ("pulls back", "dolly_out"), ("pull out", "dolly_out"),
    ("orbit left", "orbit_left"), ("orbit right", "orbit_right"), ("orbit", "orbit_left"), ("circle around", "orbit_left"),
    ("crane up", "crane_up"), ("crane down", "crane_down"), ("rise up", "crane_up"),
    ("tracking shot", "tracking"), ("tracking", "tracking"), ("follow shot", "tracking"),
    ("handheld", "handheld"), ("hand-held", "handheld"), ("shaky cam", "handheld"),
]  # fmt: skip

TAG_WORDS: list[tuple[str, str]] = [
    ("慢动作", "slow_motion"), ("slow motion", "slow_motion"), ("slow-motion", "slow_motion"), ("slowmo", "slow_motion"),
    ("快动作", "fast_motion"), ("快速", "fast_motion"), ("fast motion", "fast_motion"), ("quickly", "fast_motion"),
    ("延时", "timelapse"), ("timelapse", "timelapse"), ("time-lapse", "timelapse"),
    ("循环", "loop"), ("loop", "loop"),
    ("轻微", "subtle"), ("微微", "subtle"), ("轻轻", "subtle"), ("subtle", "subtle"), ("gently", "subtle"),
    ("gentle", "subtle"), ("slightly", "subtle"),
    ("剧烈", "dynamic"), ("激烈", "dynamic"), ("dynamic", "dynamic"), ("energetic", "dynamic"), ("dramatic", "dynamic"),
    ("平稳", "smooth"), ("流畅", "smooth"), ("smooth", "smooth"), ("smoothly", "smooth"),
]  # fmt: skip

# "不要模糊" / "no blur": things the person asked to avoid, and their English for the negative prompt.
AVOID_WORDS = {
    "模糊": "blurry", "变形": "distorted", "水印": "watermark", "字幕": "subtitles", "抖动": "shaky",
    "闪烁": "flickering", "噪点": "noise", "blur": "blurry", "blurry": "blurry", "distortion": "distorted",
    "watermark": "watermark", "text": "text", "flicker": "flickering", "shake": "shaky",
}  # fmt: skip
_AVOID = re.compile(r"(?:不要|别|避免|无|no|without|avoid|don't|do not)\s*(\S+)", re.IGNORECASE)

# A few everyday subjects, so that even an untranslated prompt names its subjects in English.
SUBJECT_WORDS: list[tuple[str, str]] = [
    ("猫", "cat"), ("狗", "dog"), ("人", "person"), ("女人", "woman"), ("女孩", "girl"), ("她", "woman"),
    ("男人", "man"), ("男孩", "boy"), ("他", "man"), ("孩子", "child"), ("鸟", "bird"), ("鱼", "fish"),
    ("马", "horse"), ("海浪", "waves"), ("大海", "sea"), ("树", "tree"), ("叶子", "leaves"), ("树叶", "leaves"),
    ("花", "flower"), ("咖啡杯", "coffee cup"), ("咖啡", "coffee"), ("杯子", "cup"), ("桌面", "table"),
    ("桌子", "table"), ("汽车", "car"), ("城市", "city"), ("山", "mountain"), ("云", "clouds"), ("雨", "rain"),
    ("雪", "snow"), ("火", "fire"), ("宇航员", "astronaut"),
    *[(word, word) for word in (
        "cat", "dog", "person", "woman", "man", "girl", "boy", "child", "bird", "fish", "horse", "ocean", "sea",
        "tree", "leaves", "flower", "coffee cup", "coffee", "cup", "table", "car", "city", "mountain", "clouds",
        "rain", "snow", "fire", "water", "cafe", "astronaut",
    )],
    ("she", "woman"), ("he", "man"),
]  # fmt: skip

CAMERA_PHRASES = {
    "static": "The camera holds steady.",
    "pan_left": "The camera pans slowly to the left.",
    "pan_right": "The camera pans slowly to the right.",
    "tilt_up": "The camera tilts up slowly.",
    "tilt_down": "The camera tilts down slowly.",
    "zoom_in": "The camera slowly zooms in.",
    "zoom_out": "The camera slowly zooms out.",
    "dolly_in": "The camera slowly pushes in.",
    "dolly_out": "The camera slowly pulls back.",
    "orbit_left": "The camera orbits gently to the left around the subject.",
    "orbit_right": "The camera orbits gently to the right around the subject.",
    "crane_up": "The camera rises smoothly on a crane.",
    "crane_down": "The camera descends smoothly on a crane.",
    "tracking": "The camera tracks alongside the subject.",
    "handheld": "Handheld camera with a slight natural shake.",
}
TAG_INTENSITY = {"subtle": 0.25, "slow_motion": 0.3, "smooth": 0.4, "dynamic": 0.85, "fast_motion": 0.8}


def _find(text: str, table: list[tuple[str, str]]) -> list[str]:
    """Values of every phrase in `table` found in `text`, in order of position, without repeats."""
    lowered = text.lower()
    hits: list[tuple[int, str]] = []
    taken: list[tuple[int, int]] = []
    for phrase, value in sorted(table, key=lambda pair: -len(pair[0])):
        start = lowered.find(phrase)
        while start != -1:
            end = start + len(phrase)
            ascii_phrase = phrase.isascii()
            bounded = not ascii_phrase or (
                (start == 0 or not lowered[start - 1].isalnum()) and (end == len(lowered) or not lowered[end].isalnum())
            )
            if bounded and not any(s < end and start < e for s, e in taken):
                hits.append((start, value))
                taken.append((start, end))
            start = lowered.find(phrase, end)
    return list(dict.fromkeys(value for _, value in sorted(hits)))


def camera_motion(text: str) -> str | None:
    found = _find(text, CAMERA_WORDS)
    return found[0] if found else None


def motion_tags(text: str) -> list[str]:
    return _find(text, TAG_WORDS)


def avoided(text: str) -> list[str]:
    words = []
    for match in _AVOID.finditer(text):
        target = match.group(1).strip(",.;，。；!！").lower()
        for key, english in AVOID_WORDS.items():
            if target.startswith(key):
                words.append(english)
                break
    return list(dict.fromkeys(words))


def subjects(text: str) -> list[str]:
    return _find(text, SUBJECT_WORDS)[:5]


def refine_offline(text: str, family: str, has_image: bool = False, reason: str | None = None) -> RefinedPrompt:
    """Refine `text` with rules alone. `reason` says why no LLM was used; it leads the warnings."""
    chosen = style(family)
    lang = language(text)
    warnings = [reason] if reason else []
    warnings.append("no LLM refined this prompt: it is your own words plus camera and quality phrasing")

    camera = camera_motion(text)
    tags = motion_tags(text)
    if not text:
        what = "the subject of the photo" if has_image else "the scene"
        body = f"Subtle, natural motion of {what}, as if alive."
        camera = camera or "dolly_in"
        tags = tags or ["subtle"]
        warnings.append("no prompt was given: proposed a subtle motion with a slow push-in")
    else:
        body = text.rstrip(" .。") + ("." if lang == "en" else "。" if lang == "zh" else ".")
    if lang not in ("en", ""):
        warnings.append(
            f"the prompt is not in English ({lang}) and the offline refiner cannot translate it: "
            "set an LLM endpoint for an English prompt"
        )
    camera = camera or "static"
    intensity = min([TAG_INTENSITY[t] for t in tags if t in TAG_INTENSITY], default=0.5)
    if "dynamic" in tags or "fast_motion" in tags:
        intensity = max(TAG_INTENSITY[t] for t in tags if t in TAG_INTENSITY)

    parts = [*avoided(text), *(p.strip() for p in chosen.negative.split(","))]
    negative = ", ".join(dict.fromkeys(p for p in parts if p))
    prompt = " ".join(part for part in [body, CAMERA_PHRASES[camera], _sentence(chosen.quality)] if part)
    return RefinedPrompt(
        prompt=prompt,
        negative_prompt=negative,
        camera_motion=camera,
        motion_tags=tags,
        motion_intensity=intensity,
        subjects=subjects(text),
        original=text,
        language=lang,
        family=family,
        source="offline",
        model=None,
        warnings=warnings,
    )


def _sentence(phrase: str) -> str:
    phrase = phrase.strip().rstrip(".")
    return f"{phrase[:1].upper()}{phrase[1:]}." if phrase else ""
