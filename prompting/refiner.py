"""PromptRefiner: any OpenAI-compatible endpoint turns a short prompt into a RefinedPrompt, or into a
Storyboard: one prompt per segment of a long video, each continuing from where the one before ended.

The refine behaviour: the person's words are cleaned and put inside <request> tags they cannot
close, with the family's system prompt (and the photo, for endpoints that see); the reply is parsed
and validated; a reply that fails validation gets one repair request; after that, or when the
endpoint fails (prompting/client.py: formats, retries, the deadline), the offline refiner answers and
the result's warnings say why. Everything happens within one time budget, retries included.
The person's choices travel beside the request, each on its own line: reference photos (shown to an
endpoint that sees, one subject each, for the LLM to name by what it shows; else named by their
labels), a motion template's phrasing, style, colour palette, camera motion and motion intensity.
What the result must honour is made sure of afterwards: the camera and intensity given, a subject
name and a style or palette phrase the LLM left out (added, and said), and advice within the
family's bounds (prompting/advice.py). An endpoint that refuses images is asked once more without them.
A storyboard goes the same way, with its own system prompt and schema (exactly N prompts); a reply
with another count is not retried: extra prompts are cut, missing ones continue from the last one
as the offline storyboard does, and a warning says so. Its reply may be N times as long as one
prompt's, so its max_tokens and time budget grow with N (configs/refiner.toml, [storyboard]).

The API key stays inside the client: it never reaches a result, a log line or a warning.
This module knows nothing about torch, gradio or the video engine.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import ValidationError

from messages import Message, note

from .advice import bounded
from .client import ChatClient, Endpoint, Reply
from .config import (
    check_choices,
    check_storyboard,
    defaults,
    storyboard_defaults,
    storyboard_prompt,
    system_prompt,
    words,
)
from .config import style as family_style
from .errors import EndpointFailed, FormatRefused, ImagesRefused, InvalidReply
from .rules import (
    continuation,
    intensity_phrase,
    joined,
    look_phrase,
    quoted,
    reference_names,
    refine_offline,
    sentence,
    storyboard_offline,
    subjects,
)
from .schema import LLMReply, RefinedPrompt, Storyboard, StoryboardReply, reply_json_schema, storyboard_json_schema
from .text import clean, cut_words, has_cjk, language, says

log = logging.getLogger(__name__)

IMAGE_SIDE = 512  # the photo is sent downscaled: enough to see what is in it, cheap in tokens
VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".mkv", ".avi")  # a reference clip: its middle frame is shown
Image = str | Path | bytes
Reference = tuple[str, Image]  # (label, photo): who or what it is ("" for none), and the photo or clip


class PromptRefiner:
    """Refines prompts through `endpoint`, or offline when it is None or fails."""

    def __init__(self, endpoint: Endpoint | None = None, timeout_s: float | None = None, max_tokens: int | None = None):
        self.endpoint = endpoint if endpoint and endpoint.base_url and endpoint.model else None
        self.timeout_s = timeout_s or defaults().timeout_s
        self.max_tokens = max_tokens or defaults().max_tokens
        self.client = None
        if self.endpoint is not None:
            self.client = ChatClient(self.endpoint, self.timeout_s, self.max_tokens, reply_json_schema())

    # ------------------------------------------------------------------ public
    def refine(
        self, text: str, family: str | None = None, image: Image | None = None, *, references: Sequence[Reference] = (),
        motion: str | None = None, style: str | None = None, color_palette: str | None = None,
        motion_intensity: float | None = None, camera_motion: str | None = None, reserve_words: int = 0,
    ) -> RefinedPrompt:
        """Refine `text` (any language, may be empty) for `family`, looking at `image` if the endpoint
        can see. `references` are (label, photo or clip) pairs, one subject each: the result's
        `subjects` names them in order, by what each shows when the endpoint sees them, else by their
        labels ("subject 1", ... for none), and the prompt names them all, distinct. `motion` is a
        motion template's phrasing the prompt describes; `style`, `color_palette`, `camera_motion` and
        `motion_intensity` (0-1: the caller maps its own scale onto it) are the person's choices the
        prompt honours; the result's camera_motion and motion_intensity are the ones given.
        `reserve_words` is room the caller keeps within the family's word budget for words it adds
        after the LLM's prompt (the engine's template, intensity and camera words). An
        unknown family raises UnknownFamily, a choice the refiner cannot honour InvalidChoice (a
        caller's mistakes); every failure of the endpoint gives the offline refinement, with the
        reason in its warnings."""
        started = time.monotonic()
        family = family or defaults().family
        chosen = family_style(family)
        references = list(references)
        check_choices(len(references), style, color_palette, camera_motion, motion_intensity)
        cleaned, warnings = clean(text or "", defaults().max_input_chars)
        choices = {"motion": clean(motion or "", defaults().max_input_chars)[0] or None, "style": style,
                   "color_palette": color_palette, "camera_motion": camera_motion, "motion_intensity": motion_intensity}
        names = reference_names([label for label, _ in references])

        if self.client is None:
            result = refine_offline(cleaned, family, image is not None, note("refiner.no_endpoint"), names=names,
                                    **choices)  # fmt: skip
        else:
            try:
                reply, notes, seen = self._ask(cleaned, family, image, references, names, choices,
                                               started + self.timeout_s)  # fmt: skip
                result = self._finish(reply, cleaned, family, chosen.word_budget, chosen.negative, names, seen, choices,
                                      reserve_words)  # fmt: skip
                result.warnings[:0] = notes
            except EndpointFailed as failure:
                result = refine_offline(cleaned, family, image is not None, self._scrub(failure.message), names=names,
                                        **choices)  # fmt: skip
        result.warnings[:0] = warnings
        result.seconds = round(time.monotonic() - started, 3)
        return result

    def storyboard(
        self, words: str, segments: int, seconds_each: float, family: str | None = None,
        image: Image | None = None, *, style: str | None = None, color_palette: str | None = None,
        reserve_words: int = 0,
    ) -> Storyboard:
        """One English prompt for each of `segments` segments of `seconds_each` seconds, from `words`
        (any language, may be empty), for `family`, looking at `image` (the first frame) if the
        endpoint can see; every prompt says the `style` and `color_palette` chosen and keeps
        `reserve_words` of the family's word budget for the words the caller adds after it. A storyboard of
        fewer than 2 or more than 32 segments, or of segments not in (0, 60] s, raises
        InvalidStoryboard, an unknown family UnknownFamily and an unknown style or palette
        InvalidChoice (a caller's mistakes); every failure of the endpoint gives the offline
        storyboard, with the reason in its warnings."""
        started = time.monotonic()
        check_storyboard(segments, seconds_each)
        family = family or defaults().family
        family_style(family)  # an unknown family raises here, before any request
        check_choices(0, style, color_palette, None, None)
        cleaned, warnings = clean(words or "", defaults().max_input_chars)
        looks = {"style": style, "color_palette": color_palette}

        if self.client is None:
            result = storyboard_offline(cleaned, segments, seconds_each, family, image is not None,
                                        note("refiner.no_endpoint"), **looks)  # fmt: skip
        else:
            reply = self._storyboard_reply(segments)
            notes: list[Message] = []
            header = "\n".join([
                f"Target model family: {family}.",
                f"Segments: {segments}, each {seconds_each:g} seconds long "
                f"({segments * seconds_each:g} seconds in all).",
                *choice_lines(looks, family),
            ])  # fmt: skip
            photo = self._photo_url(image, notes)

            def messages(photo: str | None) -> list[dict]:
                return [{"role": "system", "content": storyboard_prompt(family)},
                        {"role": "user", "content": user_content(cleaned, header, photo)}]  # fmt: skip

            def read(content: str):
                return parse_storyboard(content, segments)

            try:
                try:
                    (answer, got), repaired = self._converse(messages(photo), read, started + reply.timeout_s, reply)
                except ImagesRefused as refused:
                    notes.append(self._scrub(refused.message))
                    (answer, got), repaired = self._converse(messages(None), read, started + reply.timeout_s, reply)
                result = self._finish_storyboard(answer, got, cleaned, segments, seconds_each, family, looks,
                                                 reserve_words)  # fmt: skip
                result.warnings.extend(notes + repaired)
            except EndpointFailed as failure:
                result = storyboard_offline(cleaned, segments, seconds_each, family, image is not None,
                                            self._scrub(failure.message), **looks)  # fmt: skip
        result.warnings[:0] = warnings
        result.seconds = round(time.monotonic() - started, 3)
        return result

    # ------------------------------------------------------------------ the conversation
    def _ask(self, text: str, family: str, image, references: list[Reference], names: list[str], choices: dict,
             deadline: float) -> tuple[LLMReply, list[Message], list[bool]]:  # fmt: skip
        """The LLM's reply, the notes on what it saw, and which references it saw. An endpoint that sees
        gets the photo and the references as images; one that refuses them is asked again without."""
        notes: list[Message] = []
        photo, shown = None, [None] * len(references)
        if self.endpoint.vision:
            photo = self._photo_url(image, notes)
            for number, ((_, source), name) in enumerate(zip(references, names), 1):
                try:
                    shown[number - 1] = _data_url(source)
                except Exception as exc:  # an unreadable reference is named by its label
                    why = note("refiner.reference_unreadable", number=number, kind=type(exc).__name__)
                    notes.append(note("refiner.references_by_label", why=why, names=quoted([name])))
        elif references:
            notes.append(note("refiner.references_by_label", why=note("refiner.vision_off"), names=quoted(names)))

        def messages(photo: str | None, shown: list[str | None]) -> list[dict]:
            lines = [f"Target model family: {family}.", *choice_lines(choices, family), *reference_lines(names, shown)]
            content = user_content(text, "\n".join(lines), photo, names, shown, choices["motion"])
            return [{"role": "system", "content": system_prompt(family)}, {"role": "user", "content": content}]

        try:
            reply, repaired = self._converse(messages(photo, shown), parse, deadline)
        except ImagesRefused as refused:
            seen_names = [name for name, url in zip(names, shown) if url]
            refusal = self._scrub(refused.message)
            notes.append(note("refiner.references_by_label", why=refusal, names=quoted(seen_names)) if seen_names
                         else refusal)  # fmt: skip
            shown = [None] * len(references)
            reply, repaired = self._converse(messages(None, shown), parse, deadline)
        return reply, notes + repaired, [url is not None for url in shown]

    def _storyboard_reply(self, segments: int) -> Reply:
        """What a storyboard of `segments` asks for: exactly that many prompts, in as many tokens as they
        take, and the refiner's time budget per token of reply (never less than one refinement's)."""
        sized = storyboard_defaults()
        max_tokens = sized.reply_tokens_per_segment * segments + sized.reply_tokens_extra
        timeout_s = self.timeout_s * max(1.0, max_tokens / self.max_tokens)
        return Reply("storyboard", storyboard_json_schema(segments), max_tokens, round(timeout_s, 1))

    def _converse(self, messages: list[dict], read: Callable[[str], object], deadline: float,
                  reply: Reply | None = None) -> tuple[object, list[Message]]:  # fmt: skip
        """`read` of the endpoint's reply to `messages`; a reply it finds invalid gets one repair
        request. Raises EndpointFailed when the endpoint fails or the repair is invalid too."""
        content, mode = self.client.complete(messages, deadline, reply=reply)
        try:
            return read(content), []
        except (InvalidReply, ValidationError) as first:
            problem = describe(first)
        log.info("refiner: invalid reply (%s); asking once for a repair", problem)
        repair = [
            *messages,
            {"role": "assistant", "content": content[:4000]},
            {"role": "user", "content": f"That reply was not valid: {problem}. "
             "Reply again with only the corrected JSON object."},
        ]  # fmt: skip
        try:
            content, _ = self.client.complete(repair, deadline, mode=mode, reply=reply)
        except FormatRefused:
            raise EndpointFailed("refiner.repair_refused") from None
        try:
            answer = read(content)
        except (InvalidReply, ValidationError) as second:
            raise EndpointFailed("refiner.invalid_twice", problem=describe(second)) from None
        return answer, [note("refiner.repaired", problem=problem)]

    def _photo_url(self, image, notes: list[Message]) -> str | None:
        """The photo as a data URL for an endpoint that sees; None otherwise, or when it cannot be read
        (said in `notes`)."""
        if image is None or not self.endpoint.vision:
            return None
        try:
            return _data_url(image)
        except Exception as exc:  # an unreadable photo is no reason to fail the refinement
            notes.append(note("refiner.photo_unreadable", kind=type(exc).__name__))
            return None

    # ------------------------------------------------------------------ results
    def _finish(self, reply: LLMReply, original: str, family: str, budget: int, negative: str, names: list[str],
                seen: list[bool], choices: dict, reserve: int = 0) -> RefinedPrompt:  # fmt: skip
        """The reply made into a result that honours the person's choices: the references' subjects in
        order (the LLM's name for each it saw, else the label), each named in the prompt; the style and
        palette said; the camera and intensity given; advice within the family's bounds; the prompt
        within `budget` words less the `reserve` the caller adds after it. Whatever the refiner adds or
        changes is said in the warnings."""
        warnings: list[Message] = []
        data = reply.model_dump()
        named = reply.subjects
        if names:
            data["subjects"] = [named[i] if seen[i] and i < len(named) else name for i, name in enumerate(names)]
            unnamed = [name for i, name in enumerate(names) if seen[i] and i >= len(named)]
            if unnamed:
                warnings.append(note("refiner.references_unnamed", named=sum(seen) - len(unnamed), count=sum(seen),
                                     names=quoted(unnamed)))  # fmt: skip
        prompt, was_cut, added = self._fitted(reply.prompt, budget - reserve, data["subjects"] if names else [],
                                              choices, family)  # fmt: skip
        warnings.extend(added)
        if was_cut:
            warnings.append(note("refiner.cut_words", budget=budget, family=family))
        if has_cjk(prompt):
            warnings.append(note("refiner.non_english"))
        for name in ("camera_motion", "motion_intensity"):
            if choices.get(name) is not None:
                data[name] = choices[name]
        data["suggestions"], advice = bounded(reply.suggestions, family, reply._advised)
        warnings.extend(advice)
        prompt = self._scrub_text(prompt)
        data.update(prompt=prompt, negative_prompt=self._scrub_text(reply.negative_prompt or negative))
        return RefinedPrompt(
            **data,
            original=original,
            language=language(original),
            prompt_language=language(prompt),
            family=family,
            source="llm",
            model=self.endpoint.model,
            warnings=warnings,
        )

    @staticmethod
    def _fitted(text: str, room: int, subjects: list[str], looks: dict, family: str,
                ) -> tuple[str, bool, list[Message]]:  # fmt: skip
        """`text` cut so that it and the sentences the refiner adds after it fit in `room` words (10 at
        least), with those sentences: one naming the `subjects` it does not name, then the style and
        palette of `looks` it does not say, in the engine's words for `family` (judged as the engine
        judges: `says`). They are judged on the text as cut, so a sentence the cut took away is added
        back. Returns the prompt, whether it was cut, and a note for each sentence added."""
        cut = text
        for _ in range(4):  # a shorter cut says no more than a longer one: this settles in a round or two
            added = _additions(cut, subjects, looks, family)
            fitted, _ = cut_words(text, max(10, room - sum(len(s.split()) for s, _ in added)))
            if fitted == cut:
                break
            cut = fitted
        else:
            added = _additions(cut, subjects, looks, family)
        prompt = " ".join([cut.rstrip(), *(s for s, _ in added)]) if added else cut
        return prompt, cut != text, [said for _, said in added]

    def _finish_storyboard(
        self, reply: StoryboardReply, got: int, original: str, segments: int, seconds_each: float, family: str,
        looks: dict, reserve: int = 0,
    ) -> Storyboard:
        """The reply's prompts, exactly `segments` of them: the first `segments` of a longer list; a
        shorter one padded as the offline storyboard continues (the continuation sentence, then the
        last prompt). Each is cut to the family's word budget less the `reserve` the caller adds after
        it, and says the style and palette chosen."""
        warnings: list[Message] = []
        budget = family_style(family).word_budget
        prompts = [self._scrub_text(p) for p in reply.segments]
        if got > segments:
            warnings.append(note("storyboard.truncated", got=got, segments=segments))
        elif got < segments:
            named = subjects(original)
            prompts += [f"{continuation(i, segments, named)} {prompts[-1]}" for i in range(got + 1, segments + 1)]
            warnings.append(note("storyboard.padded", got=got, segments=segments, missing=segments - got))
        fitted = [self._fitted(p, budget - reserve, [], looks, family) for p in prompts]
        prompts = [p for p, _, _ in fitted]
        added = [m for _, _, notes in fitted for m in notes]
        warnings.extend(m for i, m in enumerate(added) if m not in added[:i])  # one note per look, not per prompt
        if any(was_cut for _, was_cut, _ in fitted):
            warnings.append(note("storyboard.cut_words", count=sum(c for _, c, _ in fitted), budget=budget,
                                 family=family))  # fmt: skip
        if any(has_cjk(p) for p in prompts):
            warnings.append(note("refiner.non_english"))
        repeated = [str(i + 1) for i, p in enumerate(prompts) if p in prompts[:i]]
        if repeated:
            warnings.append(note("storyboard.repeated", which=", ".join(repeated)))
        negative = reply.negative_prompt or family_style(family).negative
        return Storyboard(
            segments=prompts,
            negative_prompt=self._scrub_text(negative),
            seconds_each=seconds_each,
            original=original,
            language=language(original),
            prompt_language=language(" ".join(prompts)),
            family=family,
            source="llm",
            model=self.endpoint.model,
            warnings=warnings,
        )

    def _scrub_text(self, text: str) -> str:
        key = self.endpoint.api_key if self.endpoint else None
        return text.replace(key, "***") if key and len(key) >= 4 else text

    def _scrub(self, message: Message) -> Message:
        """`message` with the API key taken out of every text it carries (a server may echo it)."""
        params = {k: self._scrub_text(v) if isinstance(v, str) else v for k, v in message.params.items()}
        return Message(code=message.code, params=params)


def _additions(prompt: str, subjects: list[str], looks: dict, family: str) -> list[tuple[str, Message]]:
    """The sentences `prompt` lacks, each with the note that says it was added: one naming the
    `subjects` it does not name, and the style and palette of `looks` (the LLM was asked for them)
    in the engine's words for `family`, each unless the prompt holds that very sentence (`says`, the
    engine's own test, so the engine then adds it no more)."""
    added = []
    unsaid = [name for name in subjects if name.lower() not in prompt.lower()]
    if unsaid:
        added.append((sentence(words()["references"]["together"].format(subjects=joined(unsaid))),
                      note("refiner.subjects_added", names=quoted(unsaid))))  # fmt: skip
    for table, key, code in (("styles", looks.get("style"), "refiner.style_added"),
                             ("palettes", looks.get("color_palette"), "refiner.palette_added")):  # fmt: skip
        phrase = look_phrase(table, key, family)
        if key and not says(prompt, phrase):
            added.append((phrase, note(code, value=key, phrase=phrase)))
    return added


# ---------------------------------------------------------------------- what the LLM is told
def choice_lines(choices: dict, family: str) -> list[str]:
    """One line for each choice the person made, saying what the reply must do with it."""
    lines = []
    if choices.get("motion"):
        lines.append(f"Motion (a template the person picked; describe exactly this motion): {choices['motion']}")
    if choices.get("style"):
        lines.append(f"Style (the person's choice; the prompt must say it): "
                     f"{look_phrase('styles', choices['style'], family)}")  # fmt: skip
    if choices.get("color_palette"):
        lines.append(f"Colour palette (the person's choice; the prompt must say it): "
                     f"{look_phrase('palettes', choices['color_palette'], family)}")  # fmt: skip
    if choices.get("camera_motion"):
        lines.append(f"Camera motion (the person's choice; set camera_motion to it and describe it): "
                     f"{choices['camera_motion']}")  # fmt: skip
    if choices.get("motion_intensity") is not None:
        value = choices["motion_intensity"]
        strength = intensity_phrase(value, family) or "the model's usual motion"
        lines.append(f"Motion intensity (the person's choice; set motion_intensity to it and describe motion this "
                     f"strong): {value:.2f}, {strength}")  # fmt: skip
    return lines


def reference_lines(names: list[str], shown: list[str | None]) -> list[str]:
    """What the LLM is told about the references' subjects: to name those it sees by what they show,
    or the names to use for those it cannot see."""
    if not names:
        return []
    if not any(shown):
        return [f"Subjects, one per reference photo, in order, by the person's names for them (use these names in "
                f"the prompt and in \"subjects\", and keep the subjects distinct): {quoted(names)}."]  # fmt: skip
    return [f"Reference photos: {len(names)}, one subject each, given below in order. Name each subject by what its "
            "reference shows (a short English noun phrase), keep them distinct in the prompt, and give those names "
            "in \"subjects\", in the references' order."]  # fmt: skip


def user_content(text: str, header: str, photo: str | None, names: Sequence[str] = (),
                 shown: Sequence[str | None] = (), motion: str | None = None):  # fmt: skip
    """The user message: `header`, then the person's words inside <request> tags they cannot close;
    then, as images, the photo and each shown reference after a line naming it (one not shown is
    named by its label). Plain text when there is no image."""
    safe = text.replace("<request>", "").replace("</request>", "")
    if safe:
        request = f"<request>{safe}</request>"
    elif motion:
        request = "<request></request>\nThe person gave no words: describe the motion template above."
    else:
        request = "<request></request>\nThe person gave no request: propose a plausible, gentle motion for the photo."
    body = f"{header}\n{request}"
    if photo is None and not any(shown):
        return body
    parts: list[dict] = [{"type": "text", "text": body}]
    if photo is not None:
        parts.append({"type": "image_url", "image_url": {"url": photo}})
    for number, (name, url) in enumerate(zip(names, shown), 1):
        if url is None:
            parts.append({"type": "text", "text": f"Reference {number}: not shown; call it \"{name}\"."})
        else:
            parts.append({"type": "text", "text": f"Reference {number} (the person's label: \"{name}\"):"})
            parts.append({"type": "image_url", "image_url": {"url": url}})
    return parts


# ---------------------------------------------------------------------- reading a reply
def parse(content: str) -> LLMReply:
    """The JSON object in `content` (bare, fenced, or inside prose), validated."""
    data = _json_object(content)
    advised = data.get("suggestions")
    advised = {k: v for k, v in advised.items() if _is_number(v)} if isinstance(advised, dict) else {}
    _clamp_numbers(data)
    reply = LLMReply.model_validate(data)
    reply._advised = advised
    return reply


def parse_storyboard(content: str, segments: int) -> tuple[StoryboardReply, int]:
    """The storyboard in `content`, validated, and how many prompts it held: a list longer than
    `segments` is cut to `segments` first (what lies beyond is never used, so never judged)."""
    data = _json_object(content)
    got = data.get("segments")
    if isinstance(got, list):
        data["segments"] = got[:segments]
    return StoryboardReply.model_validate(data), len(got) if isinstance(got, list) else 0


def _json_object(content: str) -> dict:
    """The JSON object in `content`: bare, fenced, or inside prose."""
    text = content.strip()
    if not text:
        raise InvalidReply("reply.empty")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        start, end = text.find("{"), text.rfind("}")
        if start == -1 or end <= start:
            raise InvalidReply("reply.no_json") from None
        try:
            data = json.loads(text[start : end + 1])
        except json.JSONDecodeError as exc:
            raise InvalidReply("reply.broken_json", detail=exc.msg) from None
    if not isinstance(data, dict):
        raise InvalidReply("reply.not_object")
    return data


def describe(exc: Exception) -> str:
    """What is wrong with a reply, in English: it goes back to the LLM in the repair request."""
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'reply'}: {e['msg']}" for e in exc.errors()[:4])
    return str(exc)


def _clamp_numbers(data: dict) -> None:
    """Pull out-of-range numbers into range: small models ignore a schema's bounds, and every number
    here is advisory. Wrong types are left for validation to reject."""
    bounds = {"motion_intensity": (0.0, 1.0)}
    nested = {"num_frames": (1, 1024), "fps": (1, 60), "guidance_scale": (0.0, 30.0)}
    for name, (low, high) in bounds.items():
        if _is_number(data.get(name)):
            data[name] = min(max(data[name], low), high)
    suggestions = data.get("suggestions")
    if isinstance(suggestions, dict):
        for name, (low, high) in nested.items():
            if _is_number(suggestions.get(name)):
                suggestions[name] = type(low)(min(max(suggestions[name], low), high))


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _data_url(image: Image) -> str:
    """A photo (path or bytes), or a clip's middle frame, as a downscaled JPEG data URL."""
    from PIL import Image as PILImage
    from PIL import ImageOps

    if not isinstance(image, bytes) and Path(image).suffix.lower() in VIDEO_SUFFIXES:
        photo = _middle_frame(Path(image))
    else:
        source = io.BytesIO(image) if isinstance(image, bytes) else image
        with PILImage.open(source) as opened:
            photo = ImageOps.exif_transpose(opened).convert("RGB")
    photo.thumbnail((IMAGE_SIDE, IMAGE_SIDE))
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _middle_frame(path: Path):
    """The middle frame of a clip (OpenCV reads it: no torch), as a PIL image."""
    import cv2
    from PIL import Image as PILImage

    if not path.is_file():
        raise FileNotFoundError(path.name)
    capture = cv2.VideoCapture(str(path))
    try:
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        capture.set(cv2.CAP_PROP_POS_FRAMES, max(0, count // 2))
        ok, frame = capture.read()
    finally:
        capture.release()
    if not ok:
        raise ValueError("no frame could be read")
    return PILImage.fromarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
