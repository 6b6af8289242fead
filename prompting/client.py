"""The transport to any OpenAI-compatible chat endpoint: response formats, retries, one deadline.

Servers differ, so a completion asks for `json_schema` structured output first, then `json_object`
(the schema then lives in the system prompt), then plain text, and the client remembers which one
this endpoint took (per client: no state is shared between clients). What a reply must look like
(the schema, its name, its token limit) is the client's default or a `Reply` given per request.
Within one deadline it retries connection errors, 429 (honouring Retry-After) and 5xx, at most
twice, and never a 401 or 403. A request with images that the server answers with "I cannot take
images" (llama-server without a projector says so with a 500) is not retried: ImagesRefused tells
the caller to ask again without them.
Every failure is an EndpointFailed whose words hold no secret: the API key stays inside the openai
client. This module knows nothing about prompts, video models or what the reply means.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import openai

from .errors import EndpointFailed, FormatRefused, ImagesRefused

log = logging.getLogger(__name__)

MODES = ("json_schema", "json_object", "text")
MAX_RETRIES = 2  # after the first try, on connection errors, 429 and 5xx only


@dataclass(frozen=True)
class Endpoint:
    """Where the LLM is. `api_key` is kept out of repr, so it never lands in a log by accident."""

    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    vision: bool = False


@dataclass(frozen=True)
class Reply:
    """What one request asks for: a JSON object following `schema` (called `name`), at most
    `max_tokens` long, within `timeout_s` (the budget a timeout message names)."""

    name: str
    schema: dict
    max_tokens: int
    timeout_s: float


class ChatClient:
    """Chat completions from one endpoint, in the first reply format it accepts."""

    def __init__(self, endpoint: Endpoint, timeout_s: float, max_tokens: int, schema: dict):
        self.endpoint, self.timeout_s, self.max_tokens, self.schema = endpoint, timeout_s, max_tokens, schema
        self.reply = Reply("refined_prompt", schema, max_tokens, timeout_s)  # unless a request says otherwise
        self._openai = openai.OpenAI(
            base_url=endpoint.base_url,
            api_key=endpoint.api_key or "not-needed",  # local servers take any key
            max_retries=0,  # retries are ours, within the time budget
            timeout=timeout_s,
        )
        self._mode: str | None = None  # the reply format this endpoint took last
        self._lock = threading.Lock()

    @property
    def mode(self) -> str | None:
        """The reply format that worked last (None before the first reply)."""
        return self._mode

    def complete(
        self, messages: list[dict], deadline: float, mode: str | None = None, reply: Reply | None = None
    ) -> tuple[str, str]:
        """The reply's text and the format it came in. With `mode`, that format only (a repair keeps
        the format of the reply it repairs); else the one that worked last, then the others. `reply`
        says what to ask for (the client's default: a refined prompt)."""
        reply = reply or self.reply
        with self._lock:
            known = self._mode
        modes = [mode] if mode else ([known, *(m for m in MODES if m != known)] if known else list(MODES))
        for tried in modes:
            try:
                content = self._once(messages, tried, deadline, reply)
            except FormatRefused:
                log.info("refiner: %s refused response_format %s", self.endpoint.base_url, tried)
                if mode:
                    raise
                continue
            with self._lock:
                self._mode = tried
            return content, tried
        raise EndpointFailed("refiner.no_format")

    def _once(self, messages: list[dict], mode: str, deadline: float, reply: Reply) -> str:
        """One chat completion in `mode`, retried on connection errors, 429 and 5xx while time is left."""
        response_format = {
            "json_schema": {
                "type": "json_schema",
                "json_schema": {"name": reply.name, "schema": reply.schema, "strict": False},
            },
            "json_object": {"type": "json_object"},
            "text": None,
        }[mode]
        extra = {"response_format": response_format} if response_format else {}
        images = any(isinstance(m["content"], list) and any(part.get("type") == "image_url" for part in m["content"])
                     for m in messages)  # fmt: skip
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0.05:
                raise EndpointFailed("refiner.timeout", seconds=reply.timeout_s)
            try:
                try:
                    response = self._openai.with_options(timeout=remaining).chat.completions.create(
                        model=self.endpoint.model,
                        messages=messages,
                        max_tokens=reply.max_tokens,
                        temperature=0.3,
                        **extra,
                    )
                except openai.APIStatusError as exc:
                    if images and _about_images(exc):  # no other format or retry will make it see
                        detail = _detail(exc)
                        raise ImagesRefused("refiner.images_refused", status=exc.status_code, detail=detail) from None
                    raise
                return (response.choices[0].message.content or "") if response.choices else ""
            except (openai.BadRequestError, openai.UnprocessableEntityError, openai.NotFoundError) as exc:
                if mode != "text" and not isinstance(exc, openai.NotFoundError):
                    raise FormatRefused("refiner.rejected", status=exc.status_code, detail=_detail(exc)) from None
                raise EndpointFailed("refiner.rejected", status=exc.status_code, detail=_detail(exc)) from None
            except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
                raise EndpointFailed("refiner.bad_key", status=exc.status_code) from None
            except openai.APITimeoutError:
                raise EndpointFailed("refiner.timeout", seconds=reply.timeout_s) from None
            except (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError) as exc:
                attempt += 1
                failure = _failure(exc)
                wait = _retry_after(exc) if isinstance(exc, openai.APIStatusError) else None
                wait = 0.5 * 2 ** (attempt - 1) if wait is None else wait
                if attempt > MAX_RETRIES or time.monotonic() + wait >= deadline:
                    raise failure from None
                log.info("refiner: %s; retry %d in %.1fs", failure, attempt, wait)
                time.sleep(wait)
            except openai.APIStatusError as exc:
                raise EndpointFailed("refiner.answered", status=exc.status_code, detail=_detail(exc)) from None


def _failure(exc: openai.APIError) -> EndpointFailed:
    if isinstance(exc, openai.APIStatusError):
        return EndpointFailed("refiner.failed_status", status=exc.status_code)
    if isinstance(exc, openai.APITimeoutError):
        return EndpointFailed("refiner.failed_timeout")
    return EndpointFailed("refiner.failed_connect")


def _retry_after(exc: openai.APIStatusError) -> float | None:
    value = exc.response.headers.get("retry-after") if exc.response is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


# What servers that cannot see say to a request with images: llama-server without a projector answers
# 500 "image input is not supported - hint: ... mmproj"; OpenAI 400 "image_url is only supported by
# certain models"; vLLM 400 "... is not a multimodal model" or "At most 0 image(s) may be provided".
_IMAGE_WORDS = ("image", "multimodal", "vision", "mmproj")


def _about_images(exc: openai.APIStatusError) -> bool:
    """Whether an error answered to a request with images says the server cannot take images."""
    return exc.status_code in (400, 415, 422, 500, 501) and any(word in _detail(exc).lower() for word in _IMAGE_WORDS)


def _detail(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        body = body.get("error", body)
        body = body.get("message", body) if isinstance(body, dict) else body
    return str(body)[:200]
