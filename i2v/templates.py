"""Motion templates: a motion a person picks by name instead of describing it (configs/templates.toml).

A `Template` is data: its label in each language, its motion words (a default and per dialect: the
dialects are configs/styles.toml's, which i2v/phrasing.py reads), its camera move, its motion
intensity, its suggested length in seconds and its suggested guidance as a factor of the family's own.
This module reads and checks that file and answers what a template suggests for a family (`suggestion`,
the one rule the check step, the studio's advice and `i2v templates` share; `resolved`); it does not
apply anything: i2v/checks.py does, and i2v/phrasing.py writes its words into the prompt. It knows no
pipeline and no prompt refiner.
"""

from __future__ import annotations

from functools import cache

import tomllib
from pydantic import BaseModel, ConfigDict, Field

from .errors import InvalidInput
from .families import CONFIG_DIR, Family, ModelSource
from .request import MAX_INTENSITY, MIN_INTENSITY, CameraMotion

TEMPLATES_FILE = CONFIG_DIR / "templates.toml"


class Label(BaseModel):
    """A template's name for people, in each language the studio speaks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    en: str = Field(min_length=1)
    zh: str = Field(min_length=1)


class Template(BaseModel):
    """One motion template (a table of configs/templates.toml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    label: Label
    motion: dict[str, str] = Field(description="the motion in words: `default`, and per dialect")
    camera_motion: CameraMotion = "static"
    motion_intensity: float = Field(ge=MIN_INTENSITY, le=MAX_INTENSITY)
    seconds: float = Field(gt=0, le=60, description="the suggested length")
    guidance_factor: float = Field(1.0, gt=0, le=3, description="the suggested guidance, times the family's default")

    def words(self, dialect: str) -> str:
        """The motion in `dialect`'s words (its own, else the default)."""
        return self.motion.get(dialect) or self.motion["default"]

    def frames_for(self, fps: int, rule, maximum: int, minimum: int = 1) -> int:
        """The frames `seconds` takes at `fps` (the model's own rate), moved to the family's frame
        rule by `rule` (Family.round_frames' signature: count, notes) and kept within its bounds."""
        wanted = max(minimum, min(round(self.seconds * fps), maximum))  # as a `duration` counts them
        frames = rule(wanted, [])
        while frames > maximum and wanted > minimum:  # the rule rounded past the most it makes
            wanted -= 1
            frames = rule(wanted, [])
        return frames

    def guidance_for(self, default: float | None) -> float | None:
        """The suggested guidance for a family whose default is `default`; None where there is none
        to suggest (no guidance, a distilled model's 1 or less, or a factor of 1)."""
        if default is None or default <= 1.0 or self.guidance_factor == 1.0:
            return None
        return round(default * self.guidance_factor, 2)


def suggestion(template: Template, family: Family, source: ModelSource, speed: str = "exact", fps: int | None = None,
               interpolate: int = 1) -> tuple[int, float | None]:  # fmt: skip
    """What `template` suggests for a run of `family` (its weights at `source`) at `speed`, for a
    request's `fps` (the file's, or None) and `interpolate`: the frames its length takes at the fps the
    model makes (`checks.model_fps`), on the family's frame rule within its bounds, and its guidance,
    a factor of the run's own (the turbo's at speed turbo: a distilled run's 1 suggests none; the
    camera engine has none)."""
    from .checks import model_fps
    from .speed import turbo_for

    maximum = family.max_frames_for(source)
    frames = template.frames_for(model_fps(family, fps, interpolate), family.round_frames, maximum, family.min_frames)
    if not family.pipeline:
        return frames, None
    guidance = turbo_for(family).guidance_scale if speed == "turbo" else family.guidance_scale
    return frames, template.guidance_for(guidance)


def listing(source: ModelSource | None = None) -> list[dict]:
    """Every template as a row of a list, in file order: name, labels (`label`: English, `label_zh`),
    camera move, intensity, suggested seconds, guidance factor and default motion words; with the
    `source` of a model, its id and fps and the frames and guidance the template suggests for it
    (`suggestion`, as the check step applies them to a request that sets neither). The `i2v
    templates` command's, the page's and GET /api/v1/templates' list."""
    rows = []
    for template in templates().values():
        row = {"name": template.name, "label": template.label.en, "label_zh": template.label.zh,
               "camera_motion": template.camera_motion, "motion_intensity": template.motion_intensity,
               "seconds": template.seconds, "guidance_factor": template.guidance_factor,
               "motion": template.motion["default"]}  # fmt: skip
        if source is not None:
            frames, guidance = suggestion(template, source.family, source)
            row.update(model=source.family.id, fps=source.family.fps, num_frames=frames, guidance_scale=guidance)
        rows.append(row)
    return rows


def resolved(template: Template | None, camera_motion: str, motion_intensity: float | None) -> tuple[str, float | None]:
    """The camera move and intensity a request runs with: the person's own where they set them (a
    camera move other than "static", which is every request's default; any intensity), else the
    template's. The check step and the prompt phrasing both use this one rule."""
    if template is None:
        return camera_motion, motion_intensity
    camera = camera_motion if camera_motion != "static" else template.camera_motion
    intensity = motion_intensity if motion_intensity is not None else template.motion_intensity
    return camera, intensity


@cache
def templates() -> dict[str, Template]:
    """Every template, by name, in the order of configs/templates.toml."""
    from .phrasing import dialects

    data = tomllib.loads(TEMPLATES_FILE.read_text(encoding="utf-8"))
    unknown = set(data) - {"templates"}
    if unknown:
        raise ValueError(f"{TEMPLATES_FILE}: unknown top-level keys {sorted(unknown)}")
    known = {"default", *dialects()}
    found = {}
    for name, entry in data["templates"].items():
        template = Template(name=name, **entry)
        if "default" not in template.motion or set(template.motion) - known:
            raise ValueError(f"{TEMPLATES_FILE}: template {name!r} needs motion words `default`, and per dialect only "
                             f"{sorted(known - {'default'})}; it has {sorted(template.motion)}")  # fmt: skip
        found[name] = template
    return found


def get_template(name: str) -> Template:
    """The template called `name` (any case, spaces or hyphens for underscores), or the error that
    names it and the known ones."""
    known = templates()
    key = name.strip().lower().replace(" ", "_").replace("-", "_")
    if key not in known:
        raise InvalidInput("template.unknown", template=name, known=", ".join(known))
    return known[key]


__all__ = ["Label", "Template", "get_template", "listing", "resolved", "suggestion", "templates"]
