"""What a request's style knobs do in each family, and the prompt words they add where words are the way.

The knobs are `template`, `style`, `color_palette`, `motion_intensity` and `camera_motion`. For a family
that reads a text prompt each is prompt phrasing: `phrase` adds its words (configs/styles.toml, and the
template's from configs/templates.toml), worded for the family's dialect. For a family that reads no
prompt, each is done another way or refused, never accepted and dropped (`effect` says which, `refuse`
raises): the camera engine renders the camera move and scales it by the intensity; SVD turns the
intensity into its motion bucket; a colour palette becomes a gentle colour grade of the frames
(i2v/grade.py); a style, and a camera move SVD cannot make, are refused.

`phrase` is idempotent: words already in the prompt (any case) are not added again, so the studio can
show the final prompt before a run and the engine's check step then adds nothing more; the refiner's
offline camera sentences are the same words as ours for the same reason. `refiner_intensity` maps the
request's 0.1-1.5 intensity onto the refiner's 0-1 scale. This module knows families and words, not
pipelines or the refiner.
"""

from __future__ import annotations

from functools import cache
from typing import Literal

import tomllib

from messages import Message, note

from .errors import InvalidInput
from .families import CONFIG_DIR, Family, all_families, get_family
from .request import CAMERA_MOTIONS, MAX_INTENSITY, MIN_INTENSITY, PALETTES, STYLES
from .templates import Template, get_template, resolved

STYLES_FILE = CONFIG_DIR / "styles.toml"
KNOBS = ("template", "style", "color_palette", "motion_intensity", "camera_motion")
# What a knob does in a family: prompt words; rendered by the camera engine; the camera move's amplitude;
# SVD's motion bucket; a colour grade of the frames; or refused (the check step says why).
Effect = Literal["phrasing", "rendered", "amplitude", "bucket", "grade", "refused"]


@cache
def _data() -> dict:
    """configs/styles.toml, checked: every style, palette and camera move has words, in known dialects."""
    data = tomllib.loads(STYLES_FILE.read_text(encoding="utf-8"))
    where = str(STYLES_FILE)
    if set(data) != {"dialects", "styles", "palettes", "intensity", "camera"}:
        raise ValueError(f"{where}: top-level keys must be dialects, styles, palettes, intensity and camera, "
                         f"not {sorted(data)}")  # fmt: skip
    wordings = {"default", *data["dialects"]}
    for table, names, extra in (("styles", STYLES, set()), ("palettes", PALETTES, {"grade"})):
        if set(data[table]) != set(names):
            raise ValueError(f"{where}: [{table}] must hold exactly {sorted(names)}, not {sorted(data[table])}")
        for name, entry in data[table].items():
            if "default" not in entry or set(entry) - wordings - extra:
                raise ValueError(f"{where}: {table}.{name} needs `default`, and only {sorted(wordings | extra)}")
    for name, entry in data["palettes"].items():
        if set(entry["grade"]) - {"gains", "balance", "most"} or not set(entry["grade"]) & {"gains", "balance"}:
            raise ValueError(f"{where}: palettes.{name}.grade takes gains = [r, g, b] and/or balance (and most)")
    if set(data["camera"]) != set(CAMERA_MOTIONS):
        raise ValueError(f"{where}: [camera] must hold exactly {list(CAMERA_MOTIONS)}")
    bands = [band["up_to"] for band in data["intensity"]]
    if bands != sorted(bands) or bands[-1] < MAX_INTENSITY:
        raise ValueError(f"{where}: intensity bands must rise and reach {MAX_INTENSITY}")
    for band in data["intensity"]:
        if "default" not in band or set(band) - wordings - {"up_to"}:
            raise ValueError(f"{where}: every intensity band needs up_to and `default`, and only {sorted(wordings)}")
    return data


def dialects() -> dict[str, tuple[str, ...]]:
    """Dialect -> the family id prefixes that speak it (configs/styles.toml)."""
    return {name: tuple(prefixes) for name, prefixes in _data()["dialects"].items()}


def dialect_of(family_id: str) -> str:
    """The dialect of a family: the first whose prefixes start its id, else "default"."""
    for name, prefixes in dialects().items():
        if family_id.startswith(prefixes):
            return name
    return "default"


def _in(table: dict, dialect: str) -> str:
    return table.get(dialect) or table["default"]


def style_words(style: str, dialect: str = "default") -> str:
    return _in(_data()["styles"][style], dialect)


def palette_words(palette: str, dialect: str = "default") -> str:
    return _in(_data()["palettes"][palette], dialect)


def palette_grade(palette: str) -> dict:
    """How a palette grades frames for a model that reads no prompt: {"gains": [r, g, b]} and/or {"balance": f},
    with `most`, how far any channel's gain may move."""
    return dict(_data()["palettes"][palette]["grade"])


def intensity_words(value: float, dialect: str = "default") -> str:
    """The words for an intensity: its band's ("" for the band of the model's usual, around 1)."""
    for band in _data()["intensity"]:
        if value <= band["up_to"] + 1e-9:
            return _in(band, dialect)
    return ""


def camera_words(camera_motion: str) -> str:
    return _data()["camera"][camera_motion]


def refiner_intensity(value: float) -> float:
    """The request's motion_intensity (0.1 to 1.5, 1 the model's usual) on the refiner's 0-1 scale,
    where 0.5 is the usual (the refiner's default, and what it assumes when no motion tag says
    otherwise): 0.1-1.0 spreads linearly over 0-0.5 and 1.0-1.5 over 0.5-1. So 0.1 -> 0, 0.55 ->
    0.25 (the refiner's "subtle"), 1 -> 0.5, 1.35 -> 0.85 ("dynamic"), 1.5 -> 1."""
    value = min(max(value, MIN_INTENSITY), MAX_INTENSITY)
    if value <= 1.0:
        return round((value - MIN_INTENSITY) / (1.0 - MIN_INTENSITY) * 0.5, 4)
    return round(0.5 + (value - 1.0) / (MAX_INTENSITY - 1.0) * 0.5, 4)


def from_refiner(value: float) -> float:
    """The refiner's 0-1 intensity on the request's 0.1-1.5 scale: `refiner_intensity` undone."""
    value = min(max(value, 0.0), 1.0)
    if value <= 0.5:
        return round(MIN_INTENSITY + value / 0.5 * (1.0 - MIN_INTENSITY), 4)
    return round(1.0 + (value - 0.5) / 0.5 * (MAX_INTENSITY - 1.0), 4)


def _family(family: Family | str) -> Family:
    return get_family(family) if isinstance(family, str) else family


def _template(template: Template | str | None) -> Template | None:
    return get_template(template) if isinstance(template, str) else template


def effect(family: Family | str, knob: str) -> Effect:
    """What `knob` (one of KNOBS, set to something other than its default) does in `family`."""
    family = _family(family)
    if knob not in KNOBS:
        raise ValueError(f"{knob!r} is not one of {KNOBS}")
    if family.text_prompt:
        return "phrasing"
    renders_itself = family.pipeline is None  # the camera engine: it renders camera moves, at any size
    if knob == "color_palette":
        return "grade"
    if knob == "style":
        return "refused"
    if knob == "camera_motion":
        return "rendered" if renders_itself else "refused"
    # motion_intensity, and a template (its intensity, camera move and length; it has no words here)
    if renders_itself:
        return "amplitude"
    return "bucket" if callable(getattr(family, "motion_bucket", None)) else "refused"


def _readers() -> str:
    return ", ".join(f.id for f in all_families().values() if f.text_prompt)


def refuse(family: Family | str, *, template: Template | str | None = None, style: str | None = None,
           motion_intensity: float | None = None, camera_motion: str = "static") -> None:  # fmt: skip
    """Raise InvalidInput for a knob `family` can do nothing with: a style for a model that reads no
    prompt, a camera move (the person's or the template's) for one that reads none and cannot render
    it, an intensity for one with no way to follow it. Each names the value, the model and what to do."""
    family = _family(family)
    if family.text_prompt:
        return
    template = _template(template)
    if style is not None and effect(family, "style") == "refused":
        raise InvalidInput("style.refused", style=style, model=family.id, models=_readers())
    if camera_motion != "static" and effect(family, "camera_motion") == "refused":
        raise InvalidInput("style.camera_refused", camera_motion=camera_motion, model=family.id, models=_readers())
    camera, intensity = resolved(template, camera_motion, motion_intensity)
    if template is not None and camera != "static" and effect(family, "camera_motion") == "refused":
        raise InvalidInput("template.camera_refused", template=template.name, camera_motion=camera, model=family.id)
    if intensity is not None and effect(family, "motion_intensity") == "refused":
        raise InvalidInput("style.intensity_refused", value=intensity, model=family.id, models=_readers())


def _plain(text: str) -> str:
    return " ".join(text.lower().split()).rstrip(".!?。！？ ")


def _says(prompt: str, words: str) -> bool:
    """Whether `prompt` already holds `words` (any case, any spacing, its closing stop aside)."""
    return _plain(words) in " ".join(prompt.lower().split())


def phrase(prompt: str, family: Family | str, *, template: Template | str | None = None, style: str | None = None,
           color_palette: str | None = None, motion_intensity: float | None = None,
           camera_motion: str | None = None) -> tuple[str, list[Message]]:  # fmt: skip
    """`prompt` with the words of the request's style knobs for `family` after it, in its dialect:
    the template's motion, the intensity's band, the camera move, the style and the palette, each only
    when the prompt does not say it already. The template's camera move and intensity apply where the
    person left theirs unset (`templates.resolved`). Returns the prompt and what was said about it
    (nothing when no knob asks for words). A family that reads no prompt gets the prompt back as it
    is: its knobs work another way (`effect`)."""
    family = _family(family)
    if not family.text_prompt:
        return prompt, []
    template = _template(template)
    camera, intensity = resolved(template, camera_motion or "static", motion_intensity)
    dialect = dialect_of(family.id)
    asked: list[tuple[str, str]] = []  # (knob, its words)
    if template is not None:
        asked.append(("template", template.words(dialect)))
    if intensity is not None:
        asked.append(("motion_intensity", intensity_words(intensity, dialect)))
    asked.append(("camera_motion", camera_words(camera)))
    if style is not None:
        asked.append(("style", style_words(style, dialect)))
    if color_palette is not None:
        asked.append(("color_palette", palette_words(color_palette, dialect)))
    asked = [(knob, words) for knob, words in asked if words]  # static and the usual intensity say nothing
    if not asked:
        return prompt, []
    knobs = ", ".join(dict.fromkeys(knob for knob, _ in asked))
    added = [words for _, words in asked if not _says(prompt, words)]
    if not added:
        return prompt, [note("style.in_prompt", knobs=knobs, model=family.id)]
    text = prompt.strip()
    if text and not text.endswith((".", "!", "?", "。", "！", "？")):
        text += "."
    phrased = " ".join([text, *added]).strip()
    return phrased, [note("style.phrased", knobs=knobs, model=family.id, words=" ".join(added))]


__all__ = ["KNOBS", "Effect", "dialect_of", "effect", "from_refiner", "palette_grade", "phrase", "refiner_intensity",
           "refuse"]  # fmt: skip
