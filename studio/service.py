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
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from i2v.engine import VideoEngine
from i2v.errors import Cancelled, I2VError
from i2v.families import CAMERA, Family, all_families, resolve, weights_present
from i2v.hardware import Hardware
from i2v.memory import RunShape
from i2v.progress import Progress
from i2v.request import GenerationRequest, LoraChoice, VideoResult
from messages import Message, MessageError, note, render
from prompting import PromptRefiner, RefinedPrompt

from .panel import gpu_panel

log = logging.getLogger("studio")

# The form of the page, by knob: the person's own words ("words") and the prompt the model gets
# ("prompt", refined or edited) are two fields; the rest are GenerationRequest's knobs.
# Two LoRA slots: a file of the LoRA folder (by name only) and its weight each.
FORM = ("image", "words", "prompt", "negative_prompt", "camera_motion", "model", "height", "width", "num_frames",
        "fps", "num_inference_steps", "guidance_scale", "seed", "auto_refine", "memory_strategy", "vae_tiling",
        "speed", "lora_1", "lora_weight_1", "lora_2", "lora_weight_2", "quantize", "compile", "step_cache",
        "last_image", "loop", "duration", "segments", "keep_segments", "interpolate", "upscale", "keyframe_photos",
        "keyframe_frames")  # fmt: skip
# The single speed levers on the page: "auto" leaves each to `speed`; compile is "on" or "off".
LEVER_CHOICES = {"quantize": ("auto", "none", "fp8"), "compile": ("auto", "on", "off"),
                 "step_cache": ("auto", "none", "first_block", "taylorseer")}  # fmt: skip
LORA_SLOTS = (("lora_1", "lora_weight_1"), ("lora_2", "lora_weight_2"))
HISTORY_COLUMNS = ("index", "time", "status", "model", "seed", "size", "prompt")
# What "Load into form" leaves as it is: the photo, and where the weights went and which levers ran
# (a video made on another GPU, or on a CPU, says what was used there, not what was asked).
_NOT_LOADED = ("image", "last_image", "memory_strategy", "vae_tiling", "quantize", "compile", "step_cache")
# Parameters that hold a path on this machine: only their last part is ever shown to a person.
_PATH_PARAMS = ("directory", "folder", "path")


class StudioError(MessageError):
    """Something the person must fix on the page: a message id and its parameters."""


@dataclass
class Refined:
    """A refinement as the page shows it."""

    prompt: str
    negative_prompt: str
    camera_motion: str
    details: str  # Markdown, in the page's language
    warning: str | None  # set when the LLM failed and the offline rules answered
    last: dict  # {"for": the words refined, "text": what the refiner wrote}: tells a hand edit


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
        )  # fmt: skip

    # ------------------------------------------------------------------ refining
    def refine(self, words: str, image: str | None, model: str, language: str) -> Refined:
        result = self.refiner.refine(words or "", self.family(model).id, image)
        if self.metrics is not None:
            self.metrics.refine_seconds.labels(result.source).observe(result.seconds)
        warning = None
        if result.source == "offline" and self.llm_configured:  # the refiner's reason, not a cleaning note
            reason = next((w for w in result.warnings if w.code.startswith("refiner.")), result.warnings[0])
            warning = self.say(note("studio.llm_failed", reason=reason), language)
            if self.metrics is not None:
                self.metrics.failures.labels("llm_fallback").inc()
        negative = result.negative_prompt if self.family(model).negative_prompt else ""  # one it would not read: none
        return Refined(result.prompt, negative, result.camera_motion, self.describe(result, language),
                       warning, {"for": words or "", "text": result.prompt})  # fmt: skip

    def describe(self, result: RefinedPrompt, language: str) -> str:
        """The refinement's details for the page: what it found, who wrote it, in what language, and
        every warning."""
        who = note("studio.by_llm", model=result.model) if result.source == "llm" else note("studio.by_rules")
        lines = [
            note("studio.found", camera=result.camera_motion, tags=", ".join(result.motion_tags) or "—",
                 intensity=result.motion_intensity, subjects=", ".join(result.subjects) or "—"),
            note("studio.refined_by", who=who, seconds=result.seconds, language=result.language or "—"),
            note("studio.prompt_english") if result.translated
            else note("studio.prompt_untranslated" if result.source == "offline" else "studio.prompt_not_english",
                      language=result.prompt_language),
        ]  # fmt: skip
        text = "\n\n".join(self.say(line, language) for line in lines)
        warnings = [f"- {self.say(note('studio.warning', text=w), language)}" for w in result.warnings]
        return text + ("\n\n" + "\n".join(warnings) if warnings else "")

    def storyboard(self, form: dict, language: str) -> Board:
        """A storyboard for the form's duration: as many prompts as its segments, written by the
        refiner from the person's words. The person edits them (one per line) before generating."""
        from i2v.checks import check, storyboard_shape

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
        result = self.refiner.storyboard(form.get("words") or "", count, seconds_each, checked.family.id,
                                         form.get("image"))  # fmt: skip
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

    def request(self, form: dict) -> GenerationRequest:
        """The request the form asks for (the knobs the family has no use for left to it)."""
        if not form.get("image"):
            raise StudioError("studio.no_photo")
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

    def run(self, form: dict, last: dict, language: str, on_progress, cancel) -> Outcome:
        """One job, as the worker runs it: refine first when the policy says so, then the video.
        `cancel` set ends it calmly at the next step, or before it starts."""
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
            refined = self.refine(words, form.get("image"), form["model"], language)
            form = {**form, "prompt": refined.prompt, "camera_motion": refined.camera_motion,
                    "negative_prompt": form.get("negative_prompt") or refined.negative_prompt}  # fmt: skip
        request = self.request(form)
        outcome = Outcome(None, request.prompt, request.negative_prompt, request.camera_motion, refined)
        if refined is not None:
            outcome.infos.append(self.say(note("studio.refined_first"), language))
            if refined.warning:
                outcome.warnings.append(refined.warning)
        try:
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
        # The file's frames, size and fps are after chaining, interpolation and upscaling: the form
        # takes what the model made (one segment's frames, before upscaling and interpolation). A
        # video that was not upscaled or interpolated (a stopped long video keeps its segments as
        # made) is divided by nothing; the form still asks for what the video asked.
        upscaled = (item.get("upscale") or 1) if item.get("upscaler") else 1
        interpolated = (item.get("interpolate") or 1) if item.get("interpolation") else 1
        values.update(num_frames=item.get("segment_frames") or item.get("num_frames"),
                      height=item["height"] // upscaled if item.get("height") else None,
                      width=item["width"] // upscaled if item.get("width") else None,
                      fps=item["fps"] // interpolated if item.get("fps") else None,
                      segments="\n".join(segment["prompt"] for segment in item.get("segments") or []),
                      interpolate=f"x{item.get('interpolate') or 1}", upscale=f"x{item.get('upscale') or 1}",
                      duration=item.get("duration") or 0)  # fmt: skip
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
    value, ctx, kind = error.get("input"), error.get("ctx") or {}, error["type"]
    if isinstance(value, str) and len(value) > 60:  # a value is named, not echoed whole
        value = value[:60] + "…"
    elif not isinstance(value, (str, int, float, bool, type(None))):
        value = type(value).__name__
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
