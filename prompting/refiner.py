"""PromptRefiner: any OpenAI-compatible endpoint turns a short prompt into a RefinedPrompt.

Servers differ, so the refiner asks for `json_schema` structured output, falls back to
`json_object` (the schema then lives in the system prompt) and then to plain text with the JSON
cut out of it, and remembers per endpoint what worked. A reply that fails validation gets one
repair request; after that, or when the endpoint fails, the offline refiner answers and the
result's `warnings` say why. Everything happens within one time budget, retries included.

The API key stays inside the openai client: it never reaches a result, a log line or a warning.
This module knows nothing about torch, gradio or the video engine.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import openai
from pydantic import ValidationError

from .config import defaults, style, system_prompt
from .rules import refine_offline
from .schema import LLMReply, RefinedPrompt, reply_json_schema
from .text import clean, cut_words, has_cjk, language

log = logging.getLogger(__name__)

MODES = ("json_schema", "json_object", "text")
MAX_RETRIES = 2  # after the first try, on connection errors, 429 and 5xx only
IMAGE_SIDE = 512  # the photo is sent downscaled: enough to see what is in it, cheap in tokens

# What worked for each (base_url, model), shared by every refiner in the process.
_modes_that_worked: dict[tuple[str, str], str] = {}
_modes_lock = threading.Lock()


@dataclass(frozen=True)
class Endpoint:
    """Where the LLM is. `api_key` is kept out of repr, so it never lands in a log by accident."""

    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    vision: bool = False


class _ModeRefused(Exception):
    """The server will not do this response_format."""


class _Failed(Exception):
    """The endpoint could not give a reply; the message is for the user and holds no secret."""


class PromptRefiner:
    """Refines prompts through `endpoint`, or offline when it is None or fails."""

    def __init__(self, endpoint: Endpoint | None = None, timeout_s: float | None = None, max_tokens: int | None = None):
        self.endpoint = endpoint if endpoint and endpoint.base_url and endpoint.model else None
        self.timeout_s = timeout_s or defaults().timeout_s
        self.max_tokens = max_tokens or defaults().max_tokens
        self._client = None
        if self.endpoint is not None:
            self._client = openai.OpenAI(
                base_url=self.endpoint.base_url,
                api_key=self.endpoint.api_key or "not-needed",  # local servers take any key
                max_retries=0,  # retries are ours, within the time budget
                timeout=self.timeout_s,
            )

    # ------------------------------------------------------------------ public
    def refine(self, text: str, family: str | None = None, image: str | Path | bytes | None = None) -> RefinedPrompt:
        """Refine `text` (any language, may be empty) for `family`, looking at `image` if the endpoint can see."""
        started = time.monotonic()
        family = family or defaults().family
        chosen = style(family)  # unknown family: ValueError, a caller's mistake
        cleaned, warnings = clean(text or "", defaults().max_input_chars)

        if self.endpoint is None:
            result = refine_offline(cleaned, family, image is not None, "no LLM endpoint is configured")
        else:
            try:
                reply, notes = self._ask(cleaned, family, image, started + self.timeout_s)
                result = self._finish(reply, cleaned, family, chosen.word_budget, chosen.negative)
                result.warnings.extend(notes)
            except _Failed as failure:
                result = refine_offline(cleaned, family, image is not None, self._scrub(str(failure)))
        result.warnings[:0] = warnings
        result.seconds = round(time.monotonic() - started, 3)
        return result

    # ------------------------------------------------------------------ the conversation
    def _ask(self, text: str, family: str, image, deadline: float) -> tuple[LLMReply, list[str]]:
        notes: list[str] = []
        messages = [
            {"role": "system", "content": system_prompt(family)},
            {"role": "user", "content": self._user_content(text, family, image, notes)},
        ]
        key = (self.endpoint.base_url, self.endpoint.model)
        with _modes_lock:
            known = _modes_that_worked.get(key)
        modes = [known, *(m for m in MODES if m != known)] if known else list(MODES)
        for mode in modes:
            try:
                content = self._complete(messages, mode, deadline)
            except _ModeRefused:
                log.info("refiner: %s refused response_format %s", self.endpoint.base_url, mode)
                continue
            with _modes_lock:
                _modes_that_worked[key] = mode
            try:
                return _parse(content), notes
            except (ValueError, ValidationError) as first:
                problem = _describe(first)
                log.info("refiner: invalid reply (%s); asking once for a repair", problem)
                repair = [
                    *messages,
                    {"role": "assistant", "content": content[:4000]},
                    {"role": "user", "content": f"That reply was not valid: {problem}. "
                     "Reply again with only the corrected JSON object."},
                ]  # fmt: skip
                try:
                    content = self._complete(repair, mode, deadline)
                except _ModeRefused:
                    raise _Failed("the LLM endpoint refused the repair request") from None
                try:
                    reply = _parse(content)
                except (ValueError, ValidationError) as second:
                    raise _Failed(f"the LLM's reply was not valid twice ({_describe(second)})") from None
                notes.append(f"the LLM's first reply was not valid ({problem}); its repaired reply is used")
                return reply, notes
        raise _Failed("the LLM endpoint accepted none of the reply formats (json_schema, json_object, text)")

    def _complete(self, messages: list[dict], mode: str, deadline: float) -> str:
        """One chat completion in `mode`, retried on connection errors, 429 and 5xx while time is left."""
        response_format = {
            "json_schema": {
                "type": "json_schema",
                "json_schema": {"name": "refined_prompt", "schema": reply_json_schema(), "strict": False},
            },
            "json_object": {"type": "json_object"},
            "text": None,
        }[mode]
        extra = {"response_format": response_format} if response_format else {}
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0.05:
                raise _Failed(f"the LLM endpoint did not answer within {self.timeout_s:g} s")
            try:
                response = self._client.with_options(timeout=remaining).chat.completions.create(
                    model=self.endpoint.model,
                    messages=messages,
                    max_tokens=self.max_tokens,
                    temperature=0.3,
                    **extra,
                )
                return (response.choices[0].message.content or "") if response.choices else ""
            except (openai.BadRequestError, openai.UnprocessableEntityError, openai.NotFoundError) as exc:
                if mode != "text" and not isinstance(exc, openai.NotFoundError):
                    raise _ModeRefused() from None
                raise _Failed(f"the LLM endpoint rejected the request ({exc.status_code}): {_message(exc)}") from None
            except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
                raise _Failed(
                    f"the LLM endpoint refused the API key ({exc.status_code}): check OPENAI_API_KEY"
                ) from None
            except openai.APITimeoutError:
                raise _Failed(f"the LLM endpoint did not answer within {self.timeout_s:g} s") from None
            except (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError) as exc:
                attempt += 1
                what = _short_error(exc)
                wait = _retry_after(exc) if isinstance(exc, openai.APIStatusError) else None
                wait = 0.5 * 2 ** (attempt - 1) if wait is None else wait
                if attempt > MAX_RETRIES or time.monotonic() + wait >= deadline:
                    raise _Failed(f"the LLM endpoint failed: {what}") from None
                log.info("refiner: %s; retry %d in %.1fs", what, attempt, wait)
                time.sleep(wait)
            except openai.APIStatusError as exc:
                raise _Failed(f"the LLM endpoint answered {exc.status_code}: {_message(exc)}") from None

    def _user_content(self, text: str, family: str, image, notes: list[str]):
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
            notes.append(f"the photo could not be read ({type(exc).__name__}), so the LLM did not see it")
            return body
        return [{"type": "text", "text": body}, {"type": "image_url", "image_url": {"url": url}}]

    # ------------------------------------------------------------------ results
    def _finish(self, reply: LLMReply, original: str, family: str, budget: int, negative: str) -> RefinedPrompt:
        warnings: list[str] = []
        prompt, was_cut = cut_words(reply.prompt, budget)
        if was_cut:
            warnings.append(f"the refined prompt was cut to {budget} words, the budget for {family}")
        if has_cjk(prompt):
            warnings.append("the LLM left non-English text in the prompt")
        data = reply.model_dump()
        data.update(prompt=self._scrub(prompt), negative_prompt=self._scrub(reply.negative_prompt or negative))
        return RefinedPrompt(
            **data,
            original=original,
            language=language(original),
            family=family,
            source="llm",
            model=self.endpoint.model,
            warnings=warnings,
        )

    def _scrub(self, text: str) -> str:
        key = self.endpoint.api_key if self.endpoint else None
        return text.replace(key, "***") if key and len(key) >= 4 else text


# ---------------------------------------------------------------------- helpers
def _parse(content: str) -> LLMReply:
    """The JSON object in `content` (bare, fenced, or inside prose), validated."""
    text = content.strip()
    if not text:
        raise ValueError("the reply was empty")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        start, end = text.find("{"), text.rfind("}")
        if start == -1 or end <= start:
            raise ValueError("no JSON object in the reply") from None
        try:
            data = json.loads(text[start : end + 1])
        except json.JSONDecodeError as exc:
            raise ValueError(f"the JSON in the reply is broken ({exc.msg})") from None
    if not isinstance(data, dict):
        raise ValueError("the reply is JSON but not an object")
    _clamp_numbers(data)
    return LLMReply.model_validate(data)


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


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'reply'}: {e['msg']}" for e in exc.errors()[:4])
    return str(exc)


def _retry_after(exc: openai.APIStatusError) -> float | None:
    value = exc.response.headers.get("retry-after") if exc.response is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _short_error(exc: openai.APIError) -> str:
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code}"
    return "could not connect" if not isinstance(exc, openai.APITimeoutError) else "timed out"


def _message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        body = body.get("error", body)
        body = body.get("message", body) if isinstance(body, dict) else body
    return str(body)[:200]


def _data_url(image: str | Path | bytes) -> str:
    from PIL import Image, ImageOps

    source = io.BytesIO(image) if isinstance(image, bytes) else image
    with Image.open(source) as opened:
        photo = ImageOps.exif_transpose(opened).convert("RGB")
    photo.thumbnail((IMAGE_SIDE, IMAGE_SIDE))
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
