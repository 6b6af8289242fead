"""The studio: what each click on the page means, with no gradio in it.

The refine policy (refine before generating when the prompt was not refined, or changed since while
the refined text is still the refiner's own; a hand edit is always kept), building a request from
the form, running a job with progress and Stop, the rows of the history, the hardware panel, and the
one place that turns our errors into words for the person (`explain`), in the page's language.
The page (app.py) is layout and wiring on top of this; the job store's worker (worker.py) runs
each job through `run`, whoever asked for it (the page, the REST API, batch).
It never imports gradio.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from i2v.checks import refuse_references
from i2v.engine import VideoEngine
from i2v.errors import Cancelled, I2VError
from i2v.families import CAMERA, Family, all_families, resolve, weights_present
from i2v.hardware import Hardware
from i2v.memory import Estimate, RunShape, downgrade, fastest_fit, memory_profiles
from i2v.progress import Progress
from i2v.request import MAX_REFERENCES, GenerationRequest, LoraChoice, VideoResult
from messages import Message, MessageError, language_of, note, render
from prompting import PromptRefiner, RefinedPrompt

from .panel import gpu_panel, memory_words, with_speed

log = logging.getLogger("studio")

# The form of the page, by knob: the person's own words ("words") and the prompt the model gets
# ("prompt", refined or edited) are two fields; the rest are GenerationRequest's knobs.
# Two LoRA slots: a file of the LoRA folder (by name only) and its weight each. Four reference slots:
# a file (a photo or an MP4 clip) and its label each. The page's "none" for template, style and
# color_palette is "" (or None); for motion_intensity, None (or 0): the model's usual; soundtrack is
# an uploaded file's path, or None.
FORM = ("image", "words", "prompt", "negative_prompt", "camera_motion", "model", "height", "width", "num_frames",
        "fps", "num_inference_steps", "guidance_scale", "seed", "auto_refine", "memory_strategy", "vae_tiling",
        "speed", "lora_1", "lora_weight_1", "lora_2", "lora_weight_2", "quantize", "compile", "step_cache",
        "last_image", "loop", "duration", "segments", "keep_segments", "interpolate", "upscale", "keyframe_photos",
        "keyframe_frames", "reference_1", "reference_2", "reference_3", "reference_4", "reference_label_1",
        "reference_label_2", "reference_label_3", "reference_label_4", "template", "soundtrack", "style",
        "color_palette", "motion_intensity", "gpus")  # fmt: skip
# The single speed levers on the page: "auto" leaves each to `speed`; compile is "on" or "off".
LEVER_CHOICES = {"quantize": ("auto", "none", "fp8"), "compile": ("auto", "on", "off"),
                 "step_cache": ("auto", "none", "first_block", "taylorseer")}  # fmt: skip
LORA_SLOTS = (("lora_1", "lora_weight_1"), ("lora_2", "lora_weight_2"))
REFERENCE_SLOTS = tuple((f"reference_{n}", f"reference_label_{n}") for n in range(1, MAX_REFERENCES + 1))
# Knobs whose "none" the page sends as "" (a dropdown's first choice): none, as the request has it.
_NONE_AS_EMPTY = ("template", "style", "color_palette")
HISTORY_COLUMNS = ("index", "time", "status", "model", "seed", "size", "prompt")
# What "Load into form" leaves as it is: the photo, and where the weights went and which levers ran
# (a video made on another GPU, or on a CPU, says what was used there, not what was asked).
# Nor the references and the soundtrack: their files, like the photo's and the keyframes', stay the form's own.
_NOT_LOADED = ("image", "last_image", "memory_strategy", "vae_tiling", "quantize", "compile", "step_cache",
               "soundtrack", "gpus", *(name for slot in REFERENCE_SLOTS for name in slot))  # fmt: skip
# Parameters that hold a path on this machine: only their last part is ever shown to a person.
_PATH_PARAMS = ("directory", "folder", "path")


class StudioError(MessageError):
    """Something the person must fix on the page: a message id and its parameters."""


@dataclass
class Advice:
    """Settings suggested for this video (frames, fps, guidance: the refiner's, already within the
    family's bounds, else the template's), with the planner's estimate for them on this machine's
    GPU. Shown beside the refined prompt; nothing changes until the person applies `values`."""

    values: dict  # the form values its one action applies, by FORM's names ({} when nothing is suggested)
    source: dict  # knob -> "refiner" or "template": who suggested each value
    estimate: dict | None  # seconds, peak_gb, host_gb, fits, measured, gpu; None: no GPU here, or no measurements
    text: str  # Markdown, in the page's language


@dataclass
class Refined:
    """A refinement as the page shows it."""

    prompt: str  # the refined prompt with the template's, style's and palette's phrasing: what the model gets
    negative_prompt: str
    camera_motion: str
    details: str  # Markdown, in the page's language
    warning: str | None  # set when the LLM failed and the offline rules answered
    last: dict  # {"for": the words refined, "text": what the refiner wrote}: tells a hand edit
    advice: Advice | None = None  # suggested settings and their estimate: applied only when the person asks


@dataclass
class Board:
    """A storyboard as the page shows it: one prompt per segment."""

    segments: list[str]
    negative_prompt: str
    details: str  # Markdown, in the page's language
    warning: str | None  # set when the LLM failed and the offline rules answered


@dataclass
class Outcome:
    """What a Generate click came to: a video, or a calm stop."""

    result: VideoResult | None  # None: stopped, no video written
    prompt: str  # the prompt the model got (refined first, when the policy said so)
    negative_prompt: str
    camera_motion: str
    refined: Refined | None = None  # the refinement made first, if one was
    warnings: list[str] = field(default_factory=list)  # what the engine changed, and why
    infos: list[str] = field(default_factory=list)
    params: dict | None = None  # what the parameters panel shows
    history_item: dict | None = None


class Studio:
    """The service behind the page: one engine and one refiner, shared by every browser session."""

    def __init__(self, engine: VideoEngine, refiner: PromptRefiner, hardware: Hardware, *, auto_refine: bool = True,
                 llm_configured: bool = False, model: str = "auto"):  # fmt: skip
        self.engine, self.refiner, self.hardware = engine, refiner, hardware
        self.auto_refine, self.llm_configured, self.model = auto_refine, llm_configured, model
        self.metrics = None  # set by hosting.Hosting: refine latency goes there
        self._choices = self._model_choices()

    # ------------------------------------------------------------------ models and their rules
    def _model_choices(self) -> list[tuple[str, str]]:
        choices = [(f.label, f.id) for f in all_families().values() if weights_present(resolve(f.id))]
        if self.model not in ("auto", CAMERA) and self.model not in [value for _, value in choices]:
            try:
                source = resolve(self.model)
                choices.append((f"{source.family.label} — {Path(source.location).name}", self.model))
            except I2VError as exc:
                log.warning("model %s is not usable: %s", self.model, exc)
        return choices

    def choices(self) -> list[tuple[str, str]]:
        """The camera engine, every family whose weights are here, and the configured model."""
        return list(self._choices)

    def default_model(self) -> str:
        values = [value for _, value in self._choices]
        if self.model in values:
            return self.model
        return values[1] if len(values) > 1 else CAMERA

    def has_weights(self) -> bool:
        return len(self._choices) > 1

    def family(self, model: str) -> Family:
        return resolve(model).family

    def rules(self, model: str) -> dict:
        """Slider bounds and defaults for `model`, from its family's rules."""
        family = self.family(model)
        step = family.size_multiple
        return dict(
            family=family.id, height=family.height, width=family.width, fps=family.fps,
            size=dict(minimum=max(16, step), maximum=max(1280, family.height, family.width), step=step,
                      interactive=family.size_rule != "fixed"),
            frames=family.num_frames, frame_min=max(family.min_frames, family.frame_step + family.frame_offset),
            frame_step=family.frame_step, frame_max=family.max_frames,
            steps=family.num_inference_steps or 1, guidance=family.guidance_scale or 0.0, diffusion=bool(family.pipeline),
            splits=bool(family.pipeline and family.context_parallel),  # one video may go across several GPUs
        )  # fmt: skip

    # ------------------------------------------------------------------ refining
    def refine(self, words: str, image: str | None, model: str, language: str, *, template: str | None = None,
               style: str | None = None, color_palette: str | None = None, motion_intensity: float | None = None,
               camera_motion: str | None = None, references: Sequence[tuple[str, str]] = (),
               settings: dict | None = None) -> Refined:  # fmt: skip
        """The refiner's prompt for `words`, with the person's choices: a motion template (its motion
        words for the family are what the refiner describes; its camera move and intensity apply
        where the person set none: `templates.resolved`), a style, a palette, an intensity (0.1-1.5,
        onto the refiner's 0-1 scale), a camera move (None: the refiner picks one from the words, or
        the template's), and references as (label, photo or clip) pairs. The refined prompt then gets
        the same phrasing the engine's check step adds (`phrase`, idempotent), so the preview is the
        prompt that runs; the refiner keeps room for those words within the family's word budget.
        With it comes the advice: the refiner's suggested settings (else the template's) and their
        estimate for `settings` (the form's size, steps and placement; the model's defaults where
        missing). Nothing here changes a setting."""
        from i2v.phrasing import dialect_of, phrase, refiner_intensity, refuse
        from i2v.request import CAMERA_MOTIONS, style_name
        from i2v.templates import get_template, resolved

        family = self.family(model)
        chosen = get_template(template) if template else None
        style = style_name(style) or None  # spelled as a job takes it ("Watercolor", "3D")
        # A knob the model can do nothing with is refused here as the job would be, not refined for
        refuse(family, template=chosen, style=style, motion_intensity=motion_intensity,
               camera_motion=camera_motion or "static")  # fmt: skip
        refuse_references(family, len(references))
        camera, intensity = resolved(chosen, camera_motion or "static", motion_intensity)
        if chosen is None and camera_motion is None:  # nothing asked: the refiner picks from the words
            camera = None
        # The words `phrase` adds below (the template's, the intensity's, the camera move's; the refiner
        # writes the style and palette itself) must fit the family's word budget with the LLM's prompt
        extra = phrase("", family, template=chosen, motion_intensity=motion_intensity, camera_motion=camera or "static")
        reserve = len(extra[0].split())
        if camera is None:  # the refiner picks the move: room for the longest the engine may add for it
            reserve += max(len(phrase("", family, camera_motion=move)[0].split()) for move in CAMERA_MOTIONS)
        result = self.refiner.refine(
            words or "", family.id, image, references=[(label or "", path) for label, path in references],
            motion=chosen.words(dialect_of(family.id)) if chosen else None, style=style, color_palette=color_palette,
            motion_intensity=refiner_intensity(intensity) if intensity is not None else None, camera_motion=camera,
            reserve_words=reserve,
        )  # fmt: skip
        if self.metrics is not None:
            self.metrics.refine_seconds.labels(result.source).observe(result.seconds)
        warning = None
        if result.source == "offline" and self.llm_configured:  # the refiner's reason, not a cleaning note
            reason = next((w for w in result.warnings if w.code.startswith("refiner.")), result.warnings[0])
            warning = self.say(note("studio.llm_failed", reason=reason), language)
            if self.metrics is not None:
                self.metrics.failures.labels("llm_fallback").inc()
        # What the model gets: the words of the template, style, palette, intensity and camera move
        # that the refiner left out, as the check step would add them (it then adds nothing more)
        prompt, phrasing = phrase(result.prompt, family, template=chosen, style=style, color_palette=color_palette,
                                  motion_intensity=motion_intensity, camera_motion=result.camera_motion)  # fmt: skip
        negative = result.negative_prompt if family.negative_prompt else ""  # one it would not read: none
        form = {**(settings or {}), "model": model}
        suggested = result.suggestions.model_dump(exclude_none=True)
        advice = self.advice(suggested, form, language, self.template_advice(chosen, model, form))
        # What was added is said; "already in the prompt" is not: the refiner wrote those words itself
        details = self.describe(result, language, [said for said in phrasing if said.code != "style.in_prompt"])
        return Refined(prompt, negative, result.camera_motion, details, warning, {"for": words or "", "text": prompt},
                       advice)  # fmt: skip

    def refine_form(self, form: dict, language: str) -> Refined:
        """`refine` with everything the page's form (FORM's names) or a job's form holds: the words,
        the photo, the model, the template, style, palette and intensity (the page's "" and 0 for
        none), the camera move (static: the refiner picks one, or the template's), the references
        (the page's slots, or a job's list) and the settings the advice is estimated for."""
        form = self.with_references(form)
        chosen = {name: form.get(name) or None for name in _NONE_AS_EMPTY}
        camera = form.get("camera_motion")
        return self.refine(form.get("words") or "", form.get("image"), form["model"], language, **chosen,
                           motion_intensity=form.get("motion_intensity") or None,
                           camera_motion=None if camera in (None, "", "static") else camera,
                           references=[(ref.get("label") or "", ref["source"]) for ref in form.get("references") or []],
                           settings=form)  # fmt: skip

    def templates(self, language: str, model: str | None = None) -> list[dict]:
        """The motion templates, in their order: name, label in `language`, camera move, intensity,
        suggested length, and the frames and guidance that length and guidance come to for `model`
        (the default model when None). The page's pick list and GET /api/v1/templates."""
        from i2v.templates import listing

        label = "label_zh" if language_of(language) == "zh" else "label"
        return [{"name": row["name"], "label": row[label], "camera_motion": row["camera_motion"],
                 "motion_intensity": row["motion_intensity"], "seconds": row["seconds"],
                 "num_frames": row["num_frames"], "guidance_scale": row["guidance_scale"]}
                for row in listing(resolve(model or self.default_model()))]  # fmt: skip

    def template_advice(self, template, model: str, form: dict) -> dict:
        """What a template (a Template, or None) suggests for `model` at the form's speed, fps and
        interpolation (`templates.suggestion`, the check step's own rule): its frames and its guidance
        (None where there is none to suggest). The check step applies them only where a request sets none."""
        from i2v.templates import suggestion

        if template is None:
            return {}
        source = resolve(model)
        fps = int(form["fps"]) if form.get("fps") else None  # the page's 0: the model's own
        frames, guidance = suggestion(template, source.family, source, form.get("speed") or "exact", fps,
                                      factor_of(form.get("interpolate")))  # fmt: skip
        return {"num_frames": frames, "guidance_scale": guidance}

    def advice(self, suggestions: dict, form: dict, language: str, template: dict | None = None) -> Advice:
        """The advice for `form` (its model, size, steps, placement and speed): `suggestions` (the
        refiner's num_frames, fps and guidance_scale, already within the family's bounds), each
        missing one taken from `template` (a template's suggested frames and guidance, where one is
        chosen), with the planner's estimate for the video they make on the GPU the engine runs on
        (i2v/memory.py, as the hardware panel and GET /api/v1/plan estimate). Changes nothing."""
        family = self.family(form["model"])
        wanted = ("num_frames", "fps", "guidance_scale") if family.pipeline else ("num_frames", "fps")
        values, source = {}, {}
        for knob in wanted:
            for who, given in (("refiner", suggestions or {}), ("template", template or {})):
                if given.get(knob) is not None:
                    values[knob], source[knob] = given[knob], who
                    break
        guess, fits = self._estimate(family, {**form, **values}) if values else (None, False)
        estimate = None if guess is None else {
            "seconds": guess.seconds, "peak_gb": guess.peak_gb, "host_gb": guess.host_gb, "fits": fits,
            "measured": guess.measured, "gpu": self.hardware.gpu_for(self.engine.device).name,
            "memory_strategy": guess.shape.memory_strategy, "vae_tiling": guess.shape.vae_tiling}  # fmt: skip
        if not values:
            lines = [note("studio.advice_none")]
        else:
            parts = [note(f"studio.advice_{knob}", value=value) for knob, value in values.items()]
            lines = [note("studio.advice", settings=" · ".join(self.say(part, language) for part in parts),
                          source=", ".join(self.say(note(f"studio.advice_by_{who}"), language)
                                           for who in dict.fromkeys(source.values())))]  # fmt: skip
            if guess is not None:
                lines.append(note("studio.advice_fits" if fits else "studio.advice_does_not_fit", gpu=estimate["gpu"],
                                  memory=memory_words(guess), minutes=guess.seconds / 60))  # fmt: skip
            elif self.hardware.gpu_for(self.engine.device) is None:
                lines.append(note("studio.advice_no_gpu"))
            else:
                lines.append(note("studio.advice_no_estimate", model=family.id))
        return Advice(values, source, estimate, "\n\n".join(self.say(line, language) for line in lines))

    def _estimate(self, family: Family, form: dict, on: tuple[float, str] | None = None
                  ) -> tuple[Estimate | None, bool]:  # fmt: skip
        """The planner's estimate for `form` on the engine's GPU, or `on` (GB, GPU name: another
        device of the pool), in seconds, peak GPU memory and host RAM, and whether it fits as asked
        (memory strategy auto: with the fastest placement that fits). None without a GPU, for the
        camera engine, or for a family with no memory measurements."""
        gpu = self.hardware.gpu_for(self.engine.device)
        if (gpu is None and on is None) or not family.pipeline or family.id not in memory_profiles():
            return None, False
        strategy = form.get("memory_strategy") or "auto"
        shape = RunShape(family.id, int(form.get("height") or family.height), int(form.get("width") or family.width),
                         int(form.get("num_frames") or family.num_frames),
                         int(form.get("num_inference_steps") or family.num_inference_steps or 1),
                         self.engine.offload if strategy == "auto" else strategy, bool(form.get("vae_tiling")),
                         guidance_scale=form.get("guidance_scale"))  # fmt: skip
        levers = {lever: value for lever, value in _levers(form).items() if lever in ("quantize", "compile")}
        shape = with_speed(family, shape, form.get("speed") or "exact", levers)
        vram, name = on or (gpu.free_gb, gpu.name)
        ram = self.engine.ram_gb or self.hardware.ram_gb or None  # a pool's device: its share of the host RAM
        if strategy == "auto":
            fastest = fastest_fit(shape, vram, ram, name)
            if fastest is not None:
                return fastest, True
        guess, plan = downgrade(shape, vram, ram, name)
        return guess, not plan

    def describe(self, result: RefinedPrompt, language: str, phrasing: Sequence[Message] = ()) -> str:
        """The refinement's details for the page: what it found, who wrote it, in what language, what
        the style knobs' phrasing added (`phrasing`), and every warning."""
        who = note("studio.by_llm", model=result.model) if result.source == "llm" else note("studio.by_rules")
        lines = [
            note("studio.found", camera=result.camera_motion, tags=", ".join(result.motion_tags) or "—",
                 intensity=result.motion_intensity, subjects=", ".join(result.subjects) or "—"),
            note("studio.refined_by", who=who, seconds=result.seconds, language=result.language or "—"),
            note("studio.prompt_english") if result.translated
            else note("studio.prompt_untranslated" if result.source == "offline" else "studio.prompt_not_english",
                      language=result.prompt_language),
            *phrasing,
        ]  # fmt: skip
        text = "\n\n".join(self.say(line, language) for line in lines)
        warnings = [f"- {self.say(note('studio.warning', text=w), language)}" for w in result.warnings]
        return text + ("\n\n" + "\n".join(warnings) if warnings else "")

    def storyboard(self, form: dict, language: str) -> Board:
        """A storyboard for the form's duration: as many prompts as its segments, written by the
        refiner from the person's words, each saying the style and palette chosen and leaving room in
        the family's word budget for the words the engine adds to each (the template's, the
        intensity's, the camera move's). The person edits them (one per line) before generating."""
        from i2v.checks import check, storyboard_shape
        from i2v.phrasing import phrase

        if not form.get("image"):
            raise StudioError("studio.no_photo")
        checked = check(self.request({**form, "segments": None, "prompt": form.get("words") or "x"}))
        count, seconds_each = storyboard_shape(checked)
        if count == 0:
            raise StudioError("studio.storyboard_no_prompt", model=checked.family.id)
        if count < 2:
            raise StudioError("studio.storyboard_one_segment", duration=form.get("duration") or 0,
                              seconds=round(seconds_each, 1))  # fmt: skip
        seconds_each = max(0.1, seconds_each)
        knobs = checked.knobs  # the style and palette as the request spells them, the template's move applied
        extra, _ = phrase("", checked.family, template=knobs.template, motion_intensity=knobs.motion_intensity,
                          camera_motion=knobs.camera_motion)  # fmt: skip
        result = self.refiner.storyboard(form.get("words") or "", count, seconds_each, checked.family.id,
                                         form.get("image"), style=knobs.style, color_palette=knobs.color_palette,
                                         reserve_words=len(extra.split()))  # fmt: skip
        warning = None
        if result.source == "offline" and self.llm_configured:
            reason = next((w for w in result.warnings if w.code.startswith("refiner.")), result.warnings[0])
            warning = self.say(note("studio.llm_failed", reason=reason), language)
        lines = [self.say(note("studio.storyboard_made", count=count, seconds=seconds_each,
                               who=note("studio.by_llm", model=result.model) if result.source == "llm"
                               else note("studio.by_rules")), language)]  # fmt: skip
        lines += [f"- {self.say(note('studio.warning', text=w), language)}" for w in result.warnings]
        negative = result.negative_prompt if checked.family.negative_prompt else ""  # one it would not read: none
        return Board(list(result.segments), negative, "\n\n".join(lines), warning)

    @staticmethod
    def needs_refining(words: str, prompt: str, last: dict, auto_refine: bool) -> bool:
        """Refine first when nothing was refined, or when the person's words changed since and the
        refined text is still the refiner's (a hand edit is the person's choice and is kept)."""
        stale = last.get("for") != words and prompt.strip() == last.get("text", "").strip()
        return auto_refine and (not prompt.strip() or stale)

    # ------------------------------------------------------------------ a job
    @staticmethod
    def with_keyframes(form: dict) -> dict:
        """The page's keyframes (photos, and their frames written "48, 96") as the form's `keyframes`,
        photo by photo in the order given; a form without them as it is."""
        photos = [str(photo) for photo in form.get("keyframe_photos") or []]
        text = str(form.get("keyframe_frames") or "").replace("，", ",").strip()
        form = {key: value for key, value in form.items() if key not in ("keyframe_photos", "keyframe_frames")}
        if not photos and not text:
            return form
        frames = [part.strip() for part in text.split(",") if part.strip()]
        if len(frames) != len(photos):
            raise StudioError("studio.keyframes_count", photos=len(photos), frames=len(frames))
        for frame in frames:
            if not frame.isdecimal() or not frame.isascii():
                raise StudioError("studio.not_a_number", knob=note("knob.keyframes"), value=frame[:20])
        return {**form, "keyframes": [{"image": photo, "frame": int(frame)} for photo, frame in zip(photos, frames)]}

    @staticmethod
    def with_references(form: dict) -> dict:
        """The page's reference slots (a photo or MP4 clip, and its label, each) as the form's
        `references`, slot by slot, the empty ones left out; a form without slots as it is. A label
        whose slot has no file is refused: nothing asked is dropped unsaid."""
        names = [name for slot in REFERENCE_SLOTS for name in slot]
        if not any(name in form for name in names):
            return form
        references = []
        for number, (slot, label) in enumerate(REFERENCE_SLOTS, start=1):
            source, words = form.get(slot), str(form.get(label) or "").strip()
            if source:
                references.append({"source": str(source), "label": words})
            elif words:
                raise StudioError("studio.reference_label_only", slot=number, label=words[:60])
        form = {key: value for key, value in form.items() if key not in names}
        return {**form, "references": references} if references else form

    def request(self, form: dict) -> GenerationRequest:
        """The request the form asks for (the knobs the family has no use for left to it)."""
        if not form.get("image"):
            raise StudioError("studio.no_photo")
        form = self.with_references(form)
        diffusion = bool(self.family(form["model"]).pipeline)
        seed = form.get("seed")
        try:
            seed = None if seed is None or int(seed) < 0 else int(seed)
        except (TypeError, ValueError):
            raise StudioError("studio.not_a_number", knob=note("knob.seed"), value=seed) from None
        values = {name: form[name] for name in GenerationRequest.knobs() if form.get(name) is not None}
        if "segments" in values:
            values["segments"] = segments_of(values["segments"])
        if form.get("refine") and values.get("segments"):  # an API job: the refiner writes one prompt, not segments
            raise StudioError("studio.refine_and_segments")
        if not values.get("duration"):  # the page's 0: one segment (or the segments given)
            values.pop("duration", None)
        for name in _NONE_AS_EMPTY:  # the page's "" (no template, no style, no palette): none
            if isinstance(values.get(name), str) and not values[name].strip():
                values.pop(name)
        if values.get("motion_intensity") == 0:  # the page's 0, as duration's: the model's usual
            values.pop("motion_intensity")
        if "references" in values:  # the store's files: a photo or clip each, and its label
            values["references"] = [{"source": ref.get("source"), "label": ref.get("label") or ""}
                                    for ref in values["references"]]  # fmt: skip
        for name in ("interpolate", "upscale"):  # the page's radios give "x2"; the API gives 2
            if isinstance(values.get(name), str):
                values[name] = int(values[name].lstrip("x"))
        for lever in LEVER_CHOICES:
            values.pop(lever, None)
        values.update({lever: value for lever, value in _levers(form).items() if value is not None})
        prompt = (form.get("prompt") or "").strip()
        values.update(
            # With segments, they are the prompts: a prompt given too must be the first segment's (the
            # check step refuses any other); the person's words are not a fallback for it
            prompt=prompt if values.get("segments") else prompt or form.get("words") or "",
            negative_prompt=form.get("negative_prompt") or "",
            seed=seed,
            memory_strategy=form.get("memory_strategy") or "auto",
            vae_tiling=bool(form.get("vae_tiling")),
            speed=form.get("speed") or "exact",
            loras=self._loras(form),
        )
        family = self.family(form["model"])
        defaults = (family.num_inference_steps, family.guidance_scale)
        if not diffusion or (values["speed"] == "turbo" and
                             (values.get("num_inference_steps"), values.get("guidance_scale")) == defaults):
            # the camera engine takes no steps and no guidance; turbo left at the family's defaults
            # (an API call that did not set them) takes the distilled weights' own
            values.pop("num_inference_steps", None)
            values.pop("guidance_scale", None)
        return GenerationRequest(**values)

    @staticmethod
    def segments_over_prompt(form: dict) -> tuple[dict, bool]:
        """The page's form as sent when its segments box has text: the segments are the prompts and
        the prompt box (a one-segment video's) goes empty. True when that box held other text than the
        first segment's, which the person is told was not used."""
        lines = segments_of(form.get("segments"))
        if not lines:
            return form, False
        prompt = (form.get("prompt") or "").strip()
        return {**form, "prompt": ""}, bool(prompt) and prompt != lines[0]

    def lora_files(self) -> list[str]:
        """The LoRA files a person may pick: the .safetensors files in the LoRA folder, by name."""
        folder = self.engine.lora_dir
        if folder is None or not folder.is_dir():
            return []
        return sorted(path.name for path in folder.iterdir() if path.suffix.lower() == ".safetensors" and path.is_file())

    def _loras(self, form: dict) -> list[LoraChoice]:
        """The LoRA slots of the form as choices: names of files in the LoRA folder, never a path."""
        chosen, present = [], self.lora_files()
        for lora in form.get("loras") or []:  # the API's list: {"name", "weight", "weight_2"}, names only
            name = str(lora.get("name") or "")
            if name not in present:
                raise StudioError("studio.lora_unknown", name=name[:100])  # the client's own words
            chosen.append(LoraChoice(source=str(self.engine.lora_dir / name), weight=lora.get("weight", 1.0),
                                     weight_2=lora.get("weight_2")))  # fmt: skip
        for slot, weight in LORA_SLOTS:
            name = form.get(slot)
            if not name:
                continue
            if name not in present:
                raise StudioError("studio.lora_unknown", name=Path(str(name)).name)
            value = form.get(weight)
            chosen.append(LoraChoice(source=str(self.engine.lora_dir / name), weight=1.0 if value is None else value))
        return chosen

    def run(self, form: dict, last: dict, language: str, on_progress, cancel, devices: list[str] | None = None
            ) -> Outcome:  # fmt: skip
        """One job, as the worker runs it: refine first when the policy says so, then the video.
        `cancel` set ends it calmly at the next step, or before it starts. A video asking several
        GPUs (`gpus`) runs on `devices`, one process each (i2v/parallel.py)."""
        words, prompt = form.get("words") or "", (form.get("prompt") or "").strip()
        stopped = Outcome(None, prompt, form.get("negative_prompt") or "", form.get("camera_motion") or "static",
                          infos=[self.say(note("studio.stopped"), language)], params={"stopped": True})  # fmt: skip
        if cancel.is_set():  # Stop came while the job waited in the queue: nothing more is done
            return stopped
        if not form.get("image"):
            raise StudioError("studio.no_photo")
        refined = None
        segments = self.request({**form, "prompt": "x"}).segments  # the segments the person gave
        auto = form.get("auto_refine", self.auto_refine)
        if segments:  # the person's segments are the prompts (see `request`)
            pass
        elif auto and form.get("duration") and not prompt:  # a long video: a storyboard first, if it takes segments
            board = self._board_first(form, language, on_progress)
            if board is not None:
                form = {**form, "segments": board.segments, "prompt": board.segments[0],
                        "negative_prompt": form.get("negative_prompt") or board.negative_prompt}  # fmt: skip
                refined = Refined(board.segments[0], board.negative_prompt, form.get("camera_motion") or "static",
                                  board.details, board.warning, last)  # fmt: skip
        if refined is None and not segments and self.needs_refining(words, prompt, last, auto):
            if on_progress is not None:
                on_progress(Progress("refining", 0, 1, 0.0, None))
            refined = self.refine_form(form, language)  # with its template, style, references, ...
            form = {**form, "prompt": refined.prompt, "camera_motion": refined.camera_motion,
                    "negative_prompt": form.get("negative_prompt") or refined.negative_prompt}  # fmt: skip
        request = self.request(form)
        outcome = Outcome(None, request.prompt, request.negative_prompt, request.camera_motion, refined)
        if refined is not None:
            outcome.infos.append(self.say(note("studio.refined_first"), language))
            if refined.warning:
                outcome.warnings.append(refined.warning)
        try:
            if request.gpus > 1:
                result = self._across(request, devices or [], on_progress, cancel)
            else:
                result = self.engine.generate(request, on_progress=on_progress, cancel=cancel)
        except Cancelled:
            outcome.infos.append(self.say(note("studio.stopped"), language))
            outcome.params = {"stopped": True}
            return outcome
        outcome.result = result
        outcome.warnings += [self.say(said, language) for said in result.adjustments]
        if result.preview:
            outcome.infos.append(self.say(note("studio.preview"), language))
        # No "path" key: API clients take any dict with one for a file to download.
        outcome.params = {**result.metadata(), "output_path": str(result.path), "metadata_file": str(result.metadata_path),
                          "time": time.strftime("%H:%M:%S")}  # fmt: skip
        outcome.history_item = outcome.params
        return outcome

    def _across(self, request: GenerationRequest, devices: list[str], on_progress, cancel):
        """One video across len(devices) GPUs: one process per GPU, each an engine like this one's."""
        from i2v.parallel import launch

        return launch(request, devices[: request.gpus], engine_options=self.engine.options(), on_progress=on_progress,
                      cancel=cancel)  # fmt: skip

    def fits(self, form: dict, vram_gb: float, gpu_name: str = "") -> bool:
        """Whether the planner fits the job `form` in `vram_gb` of GPU memory as asked (memory
        strategy auto: with some placement; else without changing the person's settings). A job it
        has no measurements for (the camera engine, an unmeasured family) fits anywhere."""
        family = self.family(form["model"])
        if not family.pipeline or family.id not in memory_profiles():
            return True
        guess, fits = self._estimate(family, form, (vram_gb, gpu_name))
        return guess is None or fits

    def _board_first(self, form: dict, language: str, on_progress) -> Board | None:
        """The storyboard a long video is made from when the person wrote none; None when the
        duration takes one segment (refined as usual)."""
        if on_progress is not None:
            on_progress(Progress("refining", 0, 1, 0.0, None))
        try:
            return self.storyboard(form, language)
        except StudioError as exc:
            if exc.code in ("studio.storyboard_one_segment", "studio.storyboard_no_prompt"):
                return None
            raise

    # ------------------------------------------------------------------ history
    def history_headers(self, language: str) -> list[str]:
        return [self.say(note(f"studio.column_{name}"), language) for name in HISTORY_COLUMNS]

    @staticmethod
    def history_rows(history: list[dict]) -> list[list]:
        return [[i + 1, item["time"], item.get("status", "done"), item["family"], item["seed"],
                 f"{item['width'] or '—'}x{item['height'] or '—'}", item["prompt"][:80]]
                for i, item in enumerate(history)]  # fmt: skip

    def history_choices(self, history: list[dict], language: str) -> list[tuple[str, str]]:
        """The history's items as (label, key): the job's id, which stays its own as the list moves."""
        return [(self.say(note("studio.history_choice", index=i + 1, time=item["time"], family=item["family"],
                               seed=item["seed"]), language), history_key(item, i)) for i, item in enumerate(history)]  # fmt: skip

    @staticmethod
    def history_item(history: list[dict], key) -> dict:
        """The item of the history with `key` (history_choices' values)."""
        found = [item for i, item in enumerate(history) if key is not None and history_key(item, i) == str(key)]
        if not found:
            raise StudioError("studio.pick_a_video")
        return found[0]

    def from_history(self, history: list[dict], key) -> dict:
        """The form values of a video of the history (its model, if still here, else the default)."""
        item = self.history_item(history, key)
        if item.get("status", "done") != "done":
            raise StudioError("store.no_video", job=item["job"], status=item["status"])
        model = item["model"] if item["model"] in [value for _, value in self._choices] else self.default_model()
        # Not the photo (the history keeps its file name only; the form keeps the photo it has), nor
        # where the weights went (a job asked "auto" ran with what the planner chose: the form keeps its own).
        values = {name: item.get(name) for name in FORM if name in item and name not in _NOT_LOADED}
        values.update(model=model, num_inference_steps=item.get("num_inference_steps") or 1,
                      guidance_scale=item.get("guidance_scale") or 0.0)  # fmt: skip
        # The file's frames and size are after chaining, interpolation and upscaling: the form takes
        # what the model made (one segment's frames, before upscaling); its fps is the asked one (the
        # file's, interpolated and retimed to it; a video stopped before its interpolation: times it). A
        # video that was not upscaled or interpolated (a stopped long video keeps its segments as
        # made) is divided by nothing; the form still asks for what the video asked.
        upscaled = (item.get("upscale") or 1) if item.get("upscaler") else 1
        unfinished = (item.get("interpolate") or 1) if not item.get("interpolation") else 1  # asked, not done
        values.update(num_frames=item.get("segment_frames") or item.get("num_frames"),
                      height=item["height"] // upscaled if item.get("height") else None,
                      width=item["width"] // upscaled if item.get("width") else None,
                      fps=min(60, item["fps"] * unfinished) if item.get("fps") else None,
                      segments="\n".join(segment["prompt"] for segment in item.get("segments") or []),
                      interpolate=f"x{item.get('interpolate') or 1}", upscale=f"x{item.get('upscale') or 1}",
                      duration=item.get("duration") or 0)  # fmt: skip
        values.update({name: item.get(name) or "" for name in _NONE_AS_EMPTY})  # the page's none: ""
        present = self.lora_files()  # the video's LoRAs, where their files are still in the folder
        loras = [lora for lora in item.get("loras") or [] if lora["file"] in present]
        for (slot, weight), lora in zip(LORA_SLOTS, [*loras, None, None]):
            values[slot], values[weight] = (lora["file"], lora["weight"]) if lora else (None, 1.0)
        return values

    # ------------------------------------------------------------------ the hardware panel
    def panel(self, form: dict, language: str) -> tuple[str, dict]:
        """The panel's text and what its buttons would apply, for the model and settings in `form`."""
        family = self.family(form["model"])
        present = [self.family(value).id for _, value in self._choices if value != CAMERA]
        strategy = form.get("memory_strategy") or "auto"
        wanted = None
        if family.pipeline:
            wanted = RunShape(family.id, int(form["height"]), int(form["width"]), int(form["num_frames"]),
                              int(form["num_inference_steps"]),
                              self.engine.offload if strategy == "auto" else strategy, bool(form.get("vae_tiling")),
                              guidance_scale=form.get("guidance_scale"))  # fmt: skip
        levers = {lever: value for lever, value in _levers(form).items() if lever in ("quantize", "compile")}
        panel = gpu_panel(self.hardware, self.engine.device, family, wanted, strategy == "auto", present,
                          speed=form.get("speed") or "exact", levers=levers)  # fmt: skip
        text = "\n\n".join(self.say(line, language) for line in panel.lines)
        return text, {key: vars(shape) for key, shape in panel.actions.items()}

    def apply(self, kind: str, actions: dict, model: str, speed: str = "exact") -> dict:
        """The form values a panel button applies: the preset, the plan, or the faster smaller video."""
        target = actions.get(kind)
        if not target:
            raise StudioError("studio.nothing_to_apply")
        if kind == "preset":
            model = next((v for _, v in self._choices if self.family(v).id == target["family"]), model)
        # The size and the placement; the preset's steps too (a full request). Not guidance or the
        # speed levers: the panel plans with the form's own, and a plan under turbo has turbo's steps.
        knobs = ["height", "width", "num_frames", "memory_strategy", "vae_tiling"]
        knobs += ["num_inference_steps"] if kind == "preset" and speed != "turbo" else []  # turbo keeps its own
        values = {"model": model, **{knob: target[knob] for knob in knobs if target.get(knob) is not None}}
        if kind == "preset" and speed == "turbo":  # another model: its distilled steps and guidance
            values.update(self.speed_settings(model, speed))
        return values

    def speed_settings(self, model: str, speed: str, steps=None, guidance=None) -> dict:
        """The steps and guidance the form shows for `speed`: turbo's distilled ones where the family
        has them; leaving turbo (the form still shows turbo's), the family's own; else the form's
        `steps` and `guidance` as they are (a person's own values survive exact <-> fast)."""
        from i2v.speed import turbo_table

        family = self.family(model)
        turbo = turbo_table().get(family.id)
        own = {"num_inference_steps": family.num_inference_steps or 1, "guidance_scale": family.guidance_scale or 0.0}
        if turbo is not None and speed == "turbo":
            return {"num_inference_steps": turbo.num_inference_steps, "guidance_scale": turbo.guidance_scale}
        if steps is None or guidance is None or turbo is not None and (steps, guidance) == (
                turbo.num_inference_steps, turbo.guidance_scale):  # fmt: skip
            return own
        return {"num_inference_steps": steps, "guidance_scale": guidance}

    # ------------------------------------------------------------------ words
    def say(self, message: Message, language: str) -> str:
        """`message` in `language`, with this machine's paths cut to their last part."""
        return render(_public(message), language)

    def explain(self, error: BaseException, language: str) -> str | None:
        """The one place that turns our errors into words for the person; None for an error that is
        ours to fix (a bug), which the caller logs with its traceback."""
        if isinstance(error, MessageError):  # the engine's, the refiner's and ours
            return self.say(error.message, language)
        if isinstance(error, ValidationError):
            return "; ".join(self.field_error(e, language) for e in error.errors())
        return None

    def field_error(self, error: dict, language: str) -> str:
        """One pydantic error (a field of the form, or of an API request) as words: the knob, the
        value, the rule."""
        return self.say(_invalid(error), language)

    def progress_text(self, update: Progress, language: str) -> str:
        stage = note(f"studio.stage_{update.stage}")
        if update.stage not in ("denoising", "rendering", "interpolating", "upscaling"):
            return self.say(stage, language)
        code = "studio.progress_eta" if update.eta is not None else "studio.progress"
        return self.say(note(code, stage=stage, step=update.step, total=update.total, eta=update.eta or 0), language)


def segments_of(value) -> list:
    """A form's segments: the page's box (a prompt a line, blank lines left out) as a list of prompts,
    or the list an API job or batch line sends, as it is."""
    if isinstance(value, str):
        return [line.strip() for line in value.splitlines() if line.strip()]
    return list(value or [])


def factor_of(value) -> int:
    """An interpolate or upscale value of a form (2, "2", the page's radio "x2", or none) as its factor."""
    text = str(value or "1").lstrip("x")
    return int(text) if text.isdecimal() else 1


def history_key(item: dict, index: int) -> str:
    """An item's key in the history: its job's id (an item made outside the store: its place)."""
    return str(item.get("job", index))


def _levers(form: dict) -> dict:
    """The lever dropdowns as request values: None for "auto" (left to the speed), compile's
    "on"/"off" as True/False."""
    levers = {}
    for lever in LEVER_CHOICES:
        value = form.get(lever)
        value = None if value in (None, "auto") else value
        levers[lever] = {"on": True, "off": False}.get(value, value) if lever == "compile" else value
    return levers


def _public(message: Message) -> Message:
    """`message` with every path on this machine cut to its last part (never a server path shown),
    also where another parameter quotes it (an OSError's text names the folder it failed on)."""
    paths = {v: Path(v).name or v for k, v in message.params.items() if k in _PATH_PARAMS and isinstance(v, str) and v}
    params = {}
    for key, value in message.params.items():
        if isinstance(value, Message):
            value = _public(value)
        elif isinstance(value, str):
            for path, name in paths.items():
                value = value.replace(path, name)
        params[key] = value
    return Message(code=message.code, params=params)


def _invalid(error: dict) -> Message:
    """One pydantic error of a request as a message: the knob, the value, the rule."""
    knob = str(error["loc"][0]) if error["loc"] else "request"
    name = note(f"knob.{knob}") if knob in GenerationRequest.knobs() else knob
    if len(error["loc"]) > 1:  # a part of a list's item: references #2 label
        name = note("studio.part", knob=name, part=" ".join(f"#{p + 1}" if isinstance(p, int) else str(p)
                                                              for p in error["loc"][1:]))  # fmt: skip
    value, ctx, kind = error.get("input"), error.get("ctx") or {}, error["type"]
    if kind == "too_long" and isinstance(value, (list, tuple)):
        return note("studio.too_many", knob=name, count=len(value), limit=ctx.get("max_length"))
    if kind == "missing":
        return note("studio.missing_field", knob=name)
    if kind == "extra_forbidden":
        return note("studio.unknown_field", knob=name)
    if kind == "string_too_short" and ctx.get("min_length") == 1:
        return note("studio.empty", knob=name)
    if isinstance(value, str) and len(value) > 60:  # a value is named, not echoed whole
        value = value[:60] + "…"
    elif not isinstance(value, (str, int, float, bool, type(None))):
        value = type(value).__name__
    if kind == "int_from_float":
        return note("studio.whole_number", knob=name, value=value)
    if kind in ("greater_than_equal", "greater_than"):
        return note("studio.too_small", knob=name, value=value, limit=ctx.get("ge", ctx.get("gt")))
    if kind in ("less_than_equal", "less_than"):
        return note("studio.too_large", knob=name, value=value, limit=ctx.get("le", ctx.get("lt")))
    if kind == "literal_error":
        return note("studio.not_one_of", knob=name, value=value, choices=ctx.get("expected", ""))
    if kind in ("string_too_long", "string_too_short"):
        return note("studio.bad_length", knob=name, limit=ctx.get("max_length", ctx.get("min_length")))
    if kind.endswith("_parsing") or kind.endswith("_type"):
        return note("studio.not_a_number", knob=name, value=value)
    return note("studio.invalid", knob=name, detail=error["msg"])


__all__ = ["FORM", "Outcome", "Refined", "Studio", "StudioError"]
