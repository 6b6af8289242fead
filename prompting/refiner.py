"""PromptRefiner: any OpenAI-compatible endpoint turns a short prompt into a RefinedPrompt.

The refine behaviour: the person's words are cleaned and put inside <request> tags they cannot
close, with the family's system prompt (and the photo, for endpoints that see); the reply is parsed
and validated; a reply that fails validation gets one repair request; after that, or when the
endpoint fails (prompting/client.py: formats, retries, the deadline), the offline refiner answers and
the result's warnings say why. Everything happens within one time budget, retries included.

The API key stays inside the client: it never reaches a result, a log line or a warning.
This module knows nothing about torch, gradio or the video engine.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import time
from pathlib import Path

from pydantic import ValidationError

from messages import Message, note

from .client import ChatClient, Endpoint
from .config import defaults, style, system_prompt
from .errors import EndpointFailed, FormatRefused, InvalidReply
from .rules import refine_offline
from .schema import LLMReply, RefinedPrompt, reply_json_schema
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

    # ------------------------------------------------------------------ the conversation
    def _ask(self, text: str, family: str, image, deadline: float) -> tuple[LLMReply, list[Message]]:
        notes: list[Message] = []
        messages = [
            {"role": "system", "content": system_prompt(family)},
            {"role": "user", "content": self._user_content(text, family, image, notes)},
        ]
        content, mode = self.client.complete(messages, deadline)
        try:
            return parse(content), notes
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
            content, _ = self.client.complete(repair, deadline, mode=mode)
        except FormatRefused:
            raise EndpointFailed("refiner.repair_refused") from None
        try:
            reply = parse(content)
        except (InvalidReply, ValidationError) as second:
            raise EndpointFailed("refiner.invalid_twice", problem=describe(second)) from None
        notes.append(note("refiner.repaired", problem=problem))
        return reply, notes

    def _user_content(self, text: str, family: str, image, notes: list[Message]):
        # The person's words are data inside <request>; they cannot close the tag to speak to the model.
        safe = text.replace("<request>", "").replace("</request>", "")
        request = f"<request>{safe}</request>" if safe else (
            "<request></request>\nThe person gave no request: propose a plausible, gentle motion for the photo."
        )  # fmt: skip
        body = f"Target model family: {family}.\n{request}"
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
    _clamp_numbers(data)
    return LLMReply.model_validate(data)


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
