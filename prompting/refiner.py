"""PromptRefiner: any OpenAI-compatible endpoint turns a short prompt into a RefinedPrompt, or into a
Storyboard: one prompt per segment of a long video, each continuing from where the one before ended.

The refine behaviour: the person's words are cleaned and put inside <request> tags they cannot
close, with the family's system prompt (and the photo, for endpoints that see); the reply is parsed
and validated; a reply that fails validation gets one repair request; after that, or when the
endpoint fails (prompting/client.py: formats, retries, the deadline), the offline refiner answers and
the result's warnings say why. Everything happens within one time budget, retries included.
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
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from messages import Message, note

from .client import ChatClient, Endpoint, Reply
from .config import check_storyboard, defaults, storyboard_defaults, storyboard_prompt, style, system_prompt
from .errors import EndpointFailed, FormatRefused, InvalidReply
from .rules import continuation, refine_offline, storyboard_offline, subjects
from .schema import LLMReply, RefinedPrompt, Storyboard, StoryboardReply, reply_json_schema, storyboard_json_schema
from .text import clean, cut_words, has_cjk, language

log = logging.getLogger(__name__)

IMAGE_SIDE = 512  # the photo is sent downscaled: enough to see what is in it, cheap in tokens


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
    def refine(self, text: str, family: str | None = None, image: str | Path | bytes | None = None) -> RefinedPrompt:
        """Refine `text` (any language, may be empty) for `family`, looking at `image` if the endpoint
        can see. An unknown family raises UnknownFamily (a caller's mistake); every failure of the
        endpoint gives the offline refinement, with the reason in its warnings."""
        started = time.monotonic()
        family = family or defaults().family
        chosen = style(family)
        cleaned, warnings = clean(text or "", defaults().max_input_chars)

        if self.client is None:
            result = refine_offline(cleaned, family, image is not None, note("refiner.no_endpoint"))
        else:
            try:
                reply, notes = self._ask(cleaned, family, image, started + self.timeout_s)
                result = self._finish(reply, cleaned, family, chosen.word_budget, chosen.negative)
                result.warnings.extend(notes)
            except EndpointFailed as failure:
                result = refine_offline(cleaned, family, image is not None, self._scrub(failure.message))
        result.warnings[:0] = warnings
        result.seconds = round(time.monotonic() - started, 3)
        return result

    def storyboard(
        self, words: str, segments: int, seconds_each: float, family: str | None = None,
        image: str | Path | bytes | None = None,
    ) -> Storyboard:
        """One English prompt for each of `segments` segments of `seconds_each` seconds, from `words`
        (any language, may be empty), for `family`, looking at `image` (the first frame) if the
        endpoint can see. A storyboard of fewer than 2 or more than 32 segments, or of segments not
        in (0, 60] s, raises InvalidStoryboard, and an unknown family UnknownFamily (a caller's
        mistakes); every failure of the endpoint gives the offline storyboard, with the reason in its
        warnings."""
        started = time.monotonic()
        check_storyboard(segments, seconds_each)
        family = family or defaults().family
        style(family)  # an unknown family raises here, before any request
        cleaned, warnings = clean(words or "", defaults().max_input_chars)

        if self.client is None:
            result = storyboard_offline(cleaned, segments, seconds_each, family, image is not None,
                                        note("refiner.no_endpoint"))  # fmt: skip
        else:
            reply = self._storyboard_reply(segments)
            notes: list[Message] = []
            header = (f"Target model family: {family}.\nSegments: {segments}, each {seconds_each:g} seconds long "
                      f"({segments * seconds_each:g} seconds in all).")  # fmt: skip
            messages = [
                {"role": "system", "content": storyboard_prompt(family)},
                {"role": "user", "content": self._user_content(cleaned, header, image, notes)},
            ]
            try:
                (answer, got), repaired = self._converse(
                    messages, lambda content: parse_storyboard(content, segments), started + reply.timeout_s, reply
                )
                result = self._finish_storyboard(answer, got, cleaned, segments, seconds_each, family)
                result.warnings.extend(notes + repaired)
            except EndpointFailed as failure:
                result = storyboard_offline(cleaned, segments, seconds_each, family, image is not None,
                                            self._scrub(failure.message))  # fmt: skip
        result.warnings[:0] = warnings
        result.seconds = round(time.monotonic() - started, 3)
        return result

    # ------------------------------------------------------------------ the conversation
    def _ask(self, text: str, family: str, image, deadline: float) -> tuple[LLMReply, list[Message]]:
        notes: list[Message] = []
        messages = [
            {"role": "system", "content": system_prompt(family)},
            {"role": "user", "content": self._user_content(text, f"Target model family: {family}.", image, notes)},
        ]
        reply, repaired = self._converse(messages, parse, deadline)
        return reply, notes + repaired

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

    def _user_content(self, text: str, header: str, image, notes: list[Message]):
        # The person's words are data inside <request>; they cannot close the tag to speak to the model.
        safe = text.replace("<request>", "").replace("</request>", "")
        request = f"<request>{safe}</request>" if safe else (
            "<request></request>\nThe person gave no request: propose a plausible, gentle motion for the photo."
        )  # fmt: skip
        body = f"{header}\n{request}"
        if image is None or not self.endpoint.vision:
            return body
        try:
            url = _data_url(image)
        except Exception as exc:  # an unreadable photo is no reason to fail the refinement
            notes.append(note("refiner.photo_unreadable", kind=type(exc).__name__))
            return body
        return [{"type": "text", "text": body}, {"type": "image_url", "image_url": {"url": url}}]

    # ------------------------------------------------------------------ results
    def _finish(self, reply: LLMReply, original: str, family: str, budget: int, negative: str) -> RefinedPrompt:
        warnings: list[Message] = []
        prompt, was_cut = cut_words(reply.prompt, budget)
        if was_cut:
            warnings.append(note("refiner.cut_words", budget=budget, family=family))
        if has_cjk(prompt):
            warnings.append(note("refiner.non_english"))
        data = reply.model_dump()
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

    def _finish_storyboard(
        self, reply: StoryboardReply, got: int, original: str, segments: int, seconds_each: float, family: str
    ) -> Storyboard:
        """The reply's prompts, exactly `segments` of them: the first `segments` of a longer list; a
        shorter one padded as the offline storyboard continues (the continuation sentence, then the
        last prompt). Each is cut to the family's word budget."""
        warnings: list[Message] = []
        budget = style(family).word_budget
        prompts = [self._scrub_text(p) for p in reply.segments]
        if got > segments:
            warnings.append(note("storyboard.truncated", got=got, segments=segments))
        elif got < segments:
            named = subjects(original)
            prompts += [f"{continuation(i, segments, named)} {prompts[-1]}" for i in range(got + 1, segments + 1)]
            warnings.append(note("storyboard.padded", got=got, segments=segments, missing=segments - got))
        cut = [cut_words(p, budget) for p in prompts]
        prompts = [p for p, _ in cut]
        if any(was_cut for _, was_cut in cut):
            warnings.append(note("storyboard.cut_words", count=sum(c for _, c in cut), budget=budget, family=family))
        if any(has_cjk(p) for p in prompts):
            warnings.append(note("refiner.non_english"))
        repeated = [str(i + 1) for i, p in enumerate(prompts) if p in prompts[:i]]
        if repeated:
            warnings.append(note("storyboard.repeated", which=", ".join(repeated)))
        negative = reply.negative_prompt or style(family).negative
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


# ---------------------------------------------------------------------- reading a reply
def parse(content: str) -> LLMReply:
    """The JSON object in `content` (bare, fenced, or inside prose), validated."""
    data = _json_object(content)
    _clamp_numbers(data)
    return LLMReply.model_validate(data)


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


def _data_url(image: str | Path | bytes) -> str:
    from PIL import Image, ImageOps

    source = io.BytesIO(image) if isinstance(image, bytes) else image
    with Image.open(source) as opened:
        photo = ImageOps.exif_transpose(opened).convert("RGB")
    photo.thumbnail((IMAGE_SIDE, IMAGE_SIDE))
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
