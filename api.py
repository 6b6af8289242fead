"""The REST API, for the scripts and bots of a team sharing one GPU box: FastAPI routes beside the
gradio page, in the same process and on the same port (app.py mounts both). Every job goes through
the same job store and pool of workers (one per device) as the page (studio/hosting.py), so there is one
queue.

    POST   /api/v1/jobs              a job: JSON (the photo as a data URL) or a multipart form
    GET    /api/v1/jobs              the caller's jobs, newest first (paged)
    GET    /api/v1/jobs/{id}         status, queue position, progress, ETA, result
    GET    /api/v1/jobs/{id}/video   the MP4
    DELETE /api/v1/jobs/{id}         stop a queued or running job; delete an ended one
    POST   /api/v1/refine            the refiner alone, with advice: suggested settings and their estimate
    GET    /api/v1/models            the models here, with their size and frame rules
    GET    /api/v1/templates         the motion templates, in the request's language
    GET    /api/v1/plan              the memory plan and time estimate for a model and size
    GET    /api/v1/devices           every device of the job pool (I2V_DEVICES) and what it does now
    GET    /metrics                  Prometheus text

Auth: I2V_API_TOKENS=alice:TOKEN,bob:TOKEN2 (bearer tokens, each with its user; only their SHA-256
is kept in memory). With tokens set, a request without a valid one is a 401, and a user sees only
their own jobs (another user's job is a 404). Without tokens the API is open, unless the page has
users (I2V_AUTH): then it refuses, as it cannot tell who asks. The server never fetches a URL or
reads a path a client names: photos, reference clips and soundtracks are uploaded.

Uploads: each file (a photo, a reference photo or clip, a soundtrack) is at most I2V_MAX_UPLOAD_MB
(20 MB by default; a 413 names the file as the client sent it), and a request's body at most seven
such files as base64 (the photo, an end photo, four references, a soundtrack) plus 1 MiB for the
other fields: 188 MB by default (a 413 before it is all read).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import ValidationError

from i2v.request import MAX_REFERENCES
from messages import Message, note
from studio import Studio
from studio.hosting import ANYONE, Hosting, public_model
from studio.jobspec import REFINE_KNOBS, STYLE_KNOBS, JobIn, RefineIn, files_of, form_of
from studio.metrics import CONTENT_TYPE
from studio.store import StoreError, file_suffix


def language(request: Request) -> str:
    return "zh" if request.headers.get("accept-language", "").lower().startswith("zh") else "en"


def build_api(hosting: Hosting, *, tokens: dict[str, str] | None, page_has_users: bool, max_upload_mb: float) -> APIRouter:
    """The API's routes. `tokens`: user -> token (hashed here, the tokens themselves are dropped)."""
    studio: Studio = hosting.studio
    store = hosting.store
    hashed = {hashlib.sha256(token.encode()).digest(): user for user, token in (tokens or {}).items()}
    router = APIRouter()
    limit = int(max_upload_mb * 1024**2)

    def refuse(status: int, message: Message, lang: str) -> HTTPException:
        return HTTPException(status, detail=studio.say(message, lang))

    def unprocessable(exc: Exception, lang: str) -> HTTPException:
        """Our error (one the studio has words for) as a 422; anything else is raised again, as it
        is: called inside the `except` that caught it."""
        text = studio.explain(exc, lang)
        if text is None:
            raise  # noqa: PLE0704 - the exception being handled by the caller
        return HTTPException(422, detail=text)

    def owner(request: Request) -> str | None:
        """Who asks: a token's user; ANYONE without tokens (None: list everyone's jobs)."""
        if not hashed:
            if page_has_users:
                raise refuse(401, note("api.bad_token"), language(request))
            return None
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        digest = hashlib.sha256(token.strip().encode()).digest()
        for known, user in hashed.items():
            if scheme.lower() == "bearer" and hmac.compare_digest(known, digest):
                return user
        raise HTTPException(401, detail=studio.say(note("api.bad_token"), language(request)),
                            headers={"WWW-Authenticate": "Bearer"})  # fmt: skip

    def model_ids() -> dict[str, str]:
        """id -> the studio's value, for every model here: a family id, or a local folder by its
        name ("folder:NAME" where a family here has that name already)."""
        ids: dict[str, str] = {}
        for _, value in studio.choices():
            name = public_model(value)
            ids[f"folder:{name}" if name in ids else name] = value
        return ids

    def model_value(asked: str | None, lang: str) -> str:
        """The model a client names, as the studio knows it: one of GET /api/v1/models' ids (a
        server folder is never named by a client; the one the server runs is given by its name)."""
        if asked is None:
            return studio.default_model()
        known = model_ids()
        if asked not in known:
            raise refuse(422, note("studio.not_one_of", knob="model", value=asked, choices=", ".join(known)), lang)
        return known[asked]

    def own_job(job_id: str, who: str | None, lang: str):
        job = store.get(job_id, owner=who)
        if job is None:  # none, or another user's: the same answer
            raise refuse(404, note("store.no_such_job", job=job_id[:40]), lang)
        return job

    # ------------------------------------------------------------------ jobs
    @router.post("/api/v1/jobs", status_code=202, openapi_extra={"requestBody": {"content": {
        "application/json": {"schema": JobIn.model_json_schema()},
        "multipart/form-data": {"schema": {"type": "object", "description": "the same fields as form values; "
                                           "'image' a file, 'loras' and 'segments' JSON lists; files 'last_image', "
                                           f"'keyframe_FRAME', 'reference_1' to 'reference_{MAX_REFERENCES}' (a "
                                           "photo or an MP4 clip, each with a field 'reference_label_N') and "
                                           "'soundtrack'"}}},
        "required": True}})  # fmt: skip
    async def submit(request: Request, who: str | None = Depends(owner)):
        lang = language(request)
        files, fields, files_named = await _read_job(request, lang, refuse)
        photo, suffix = files.get("image", (None, ".png"))
        try:
            job_in = JobIn.model_validate(fields)
        except ValidationError as exc:
            raise RequestValidationError(exc.errors(include_url=False)) from None
        if photo is None:  # decoded, checked and copied off the event loop: big photos take a moment
            photo, suffix = await run_in_threadpool(_data_url, job_in.image, lang, refuse)
        others = {name: files[name] for name in files if name != "image"}
        for name, value in files_of(job_in).items():
            if name not in others:
                others[name] = await run_in_threadpool(_data_url, value, lang, refuse, _json_field(name, True), name)
        for name, (data, _) in {"image": (photo, suffix), **others}.items():
            if len(data) > limit:  # named as the client sent it (keyframes[2].image, or its multipart field)
                shown = files_named.get(name) or _json_field(name)
                raise refuse(413, _too_large(name, shown, len(data), max_upload_mb), lang)
        form = form_of(job_in, studio.default_model())
        form["model"] = model_value(job_in.model, lang)
        try:
            job = await run_in_threadpool(hosting.submit, form, who or ANYONE, lang, photo=photo, suffix=suffix,
                                          others=others)  # fmt: skip
        except StoreError as exc:
            full = exc.message.code == "studio.queue_full"
            raise HTTPException(503 if full else 409, detail=studio.say(exc.message, lang),
                                headers={"Retry-After": "30"} if full else None) from None  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - ours become a 422 with words; a bug stays a bug (a 500, logged)
            raise unprocessable(exc, lang) from None
        return JSONResponse(hosting.public(job), status_code=202, headers={"Location": f"/api/v1/jobs/{job.id}"})

    @router.get("/api/v1/jobs")
    def list_jobs(request: Request, limit: int = Query(20, ge=1, le=200), offset: int = Query(0, ge=0, le=10**9),
                  who: str | None = Depends(owner)):  # fmt: skip
        jobs = store.list(who, limit=limit, offset=offset)
        return {"jobs": [hosting.public(job) for job in jobs], "total": store.count(who), "limit": limit,
                "offset": offset}  # fmt: skip

    @router.get("/api/v1/jobs/{job_id}")
    def get_job(job_id: str, request: Request, who: str | None = Depends(owner)):
        return hosting.public(own_job(job_id, who, language(request)))

    @router.get("/api/v1/jobs/{job_id}/video")
    def get_video(job_id: str, request: Request, who: str | None = Depends(owner)):
        lang = language(request)
        job = own_job(job_id, who, lang)
        if job.status != "done" or not job.video or not Path(job.video).is_file():
            raise refuse(409, note("store.no_video", job=job.id, status=job.status), lang)
        return FileResponse(job.video, media_type="video/mp4", filename=Path(job.video).name)

    @router.delete("/api/v1/jobs/{job_id}")
    def delete_job(job_id: str, request: Request, who: str | None = Depends(owner)):
        job = own_job(job_id, who, language(request))
        if not hosting.delete(job.id, job.owner):
            return Response(status_code=204)
        return JSONResponse(hosting.public(store.get(job.id)), status_code=202)

    # ------------------------------------------------------------------ the rest
    @router.post("/api/v1/refine")
    def refine(body: RefineIn, request: Request, who: str | None = Depends(owner)):
        """The refiner's prompt, as the job would run it (the template's, style's and palette's words
        added as the engine adds them), and `advice`: the settings the refiner (else the template)
        suggests, within the model's bounds, with the planner's estimate for them on this server's
        GPU and the fields one action would set (`apply`). Advice changes nothing by itself."""
        lang = language(request)
        if not body.prompt.strip() and not body.template:
            raise refuse(422, note("api.prompt_or_template"), lang)
        model = model_value(body.model, lang)
        uploads = {"image": body.image} if body.image else {}
        uploads.update({f"reference_{index}": ref.image for index, ref in enumerate(body.references, start=1)})
        files: dict[str, Path] = {}
        try:
            for name, value in uploads.items():
                data, suffix = _data_url(value, lang, refuse, _json_field(name), name)
                if len(data) > limit:
                    raise refuse(413, _too_large(name, _json_field(name), len(data), max_upload_mb), lang)
                files[name] = hosting.scratch(data, suffix, name)
            references = [(ref.label, str(files[f"reference_{index}"]))
                          for index, ref in enumerate(body.references, start=1)]  # fmt: skip
            # what the advice is estimated for: the size, steps, placement and speed (the style knobs go to the refiner)
            settings = body.model_dump(include=set(REFINE_KNOBS) - set(STYLE_KNOBS), exclude_none=True)
            try:
                refined = studio.refine(body.prompt, str(files["image"]) if "image" in files else None, model, lang,
                                        template=body.template, style=body.style, color_palette=body.color_palette,
                                        motion_intensity=body.motion_intensity, camera_motion=body.camera_motion,
                                        references=references, settings=settings)  # fmt: skip
            except Exception as exc:  # noqa: BLE001
                raise unprocessable(exc, lang) from None
        finally:
            for path in files.values():
                hosting.drop_scratch(path)
        advice = refined.advice
        return {"prompt": refined.prompt, "negative_prompt": refined.negative_prompt,
                "camera_motion": refined.camera_motion, "details": refined.details, "warning": refined.warning,
                "advice": {"suggestions": {knob: advice.values[knob] for knob, who in advice.source.items()
                                           if who == "refiner"},
                           "source": advice.source, "estimate": advice.estimate, "apply": advice.values,
                           "text": advice.text}}  # fmt: skip

    @router.get("/api/v1/templates")
    def templates(request: Request, model: str | None = None, who: str | None = Depends(owner)):
        """The motion templates: name, label in the request's language, camera move, intensity, and
        the frames and guidance each suggests for `model` (this server's default when left out)."""
        lang = language(request)
        value = model_value(model, lang)
        return {"model": public_model(value), "templates": studio.templates(lang, value)}

    @router.get("/api/v1/models")
    def models(who: str | None = Depends(owner)):
        ids = {value: name for name, value in model_ids().items()}
        return {"default": ids.get(studio.default_model(), public_model(studio.default_model())),
                "models": [{"id": ids[value], "label": label, **studio.rules(value)} for label, value in studio.choices()],
                "loras": studio.lora_files()}  # fmt: skip

    @router.get("/api/v1/plan")
    def plan(request: Request, model: str | None = None, height: int | None = Query(None, ge=16, le=2160),
             width: int | None = Query(None, ge=16, le=3840), num_frames: int | None = Query(None, ge=1, le=1024),
             num_inference_steps: int | None = Query(None, ge=1, le=200),
             memory_strategy: Literal["auto", "none", "model", "group", "sequential"] = "auto",
             speed: Literal["exact", "fast", "turbo"] = "exact", who: str | None = Depends(owner)):  # fmt: skip
        lang = language(request)
        model = model_value(model, lang)
        try:
            rules = studio.rules(model)
            form = {"model": model, "height": height or rules["height"], "width": width or rules["width"],
                    "num_frames": num_frames or rules["frames"], "num_inference_steps": num_inference_steps or rules["steps"],
                    "memory_strategy": memory_strategy, "speed": speed, "guidance_scale": rules["guidance"]}  # fmt: skip
            text, actions = studio.panel(form, lang)
        except Exception as exc:  # noqa: BLE001
            raise unprocessable(exc, lang) from None
        return {"model": public_model(model), "plan": text, "actions": actions}

    @router.get("/api/v1/devices")
    def devices(who: str | None = Depends(owner)):
        """Every device of the job pool (I2V_DEVICES), in slot order: its card and memory, and what it
        does now (idle with the model it keeps loaded, running a job at its stage and step, one of a
        group running one job across several GPUs, or down). The most `gpus` one job may ask is their
        count. No paths: a model folder by its name."""
        return {"devices": hosting.pool.describe()}

    @router.get("/metrics", include_in_schema=False)
    def metrics():
        return Response(hosting.metrics.text(), media_type=CONTENT_TYPE)

    return router


def add_api(app: FastAPI, hosting: Hosting, **kwargs) -> None:
    app.include_router(build_api(hosting, **kwargs))
    studio = hosting.studio

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        """A 422 per bad field: where it is, its kind, and the rule in words (the request's
        language). The value is never echoed whole (a NaN could not even be written as JSON)."""
        detail = []
        for error in exc.errors():
            loc = [str(part) for part in error.get("loc", ())]
            named = loc[1:] if loc[:1] in (["body"], ["query"], ["path"]) and len(loc) > 1 else loc
            detail.append({"loc": loc, "type": error.get("type"),
                           "msg": studio.field_error({**error, "loc": tuple(named)}, language(request))})  # fmt: skip
        return JSONResponse({"detail": detail}, status_code=422)
    # A body is counted as it streams in (a chunked one has no Content-Length to check first): the
    # files of one request (BODY_FILES), each at its limit as base64 (4/3), plus room for the other
    # fields. Each file is still held to its own limit once decoded (a 413 naming that file).
    app.add_middleware(BodyLimit, limit=body_limit(kwargs["max_upload_mb"]), say=hosting.studio.say)


# The files one request's body has room for, each at I2V_MAX_UPLOAD_MB: the photo, an end photo, four
# references (photos or short clips) and a soundtrack. Keyframes share that room.
BODY_FILES = 7


def body_limit(max_upload_mb: float) -> int:
    """The most bytes an API request's body may hold: BODY_FILES files at I2V_MAX_UPLOAD_MB each, as
    base64, and 1 MiB for the other fields (188 MB with the default 20 MB)."""
    return BODY_FILES * int(max_upload_mb * 1024**2 * 4 / 3) + 1024**2


class BodyLimit:
    """Refuse (413) an API request whose body grows past `limit` bytes, before it is all read."""

    def __init__(self, app, limit: int, say):
        self.app, self.limit, self.say = app, limit, say

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        lang = "zh" if headers.get(b"accept-language", b"").lower().startswith(b"zh") else "en"
        refusal = HTTPException(413, detail=self.say(note("api.request_too_large", limit_mb=_mb(self.limit)), lang))
        try:
            declared = int(headers.get(b"content-length", b"0"))
        except ValueError:
            declared = 0
        if declared > self.limit:
            return await JSONResponse({"detail": refusal.detail}, status_code=413)(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise refusal  # inside the route's read: FastAPI answers it as a 413
            return message

        return await self.app(scope, counted, send)


async def _read_job(request: Request, lang: str, refuse) -> tuple[dict[str, tuple[bytes, str]], dict, dict[str, str]]:
    """The job's fields, the files that came in a multipart form by the store's names ("image",
    "last_image", "keyframe_N" for a file field named keyframe_FRAME (its frame goes into the fields'
    keyframes), "reference_N" for the N-th reference file, "soundtrack"), and each such file's field
    as the client named it (what a message about it names)."""
    kind = request.headers.get("content-type", "")
    if kind.startswith("multipart/form-data"):
        form = await request.form()
        files, fields, named, keyframes, references, labels = {}, {}, {}, [], {}, {}
        for key, value in form.multi_items():
            slot = _reference_slot(key, "reference_")
            if hasattr(value, "read"):  # an uploaded file
                frame = key.removeprefix("keyframe_")
                # a frame index in ASCII digits ("keyframe_²" or "keyframe_٣" is no frame): anything
                # else is an unknown field, named as such
                frame_ok = frame.isascii() and frame.isdecimal() and len(frame) <= 9
                if key not in ("image", "last_image", "soundtrack") and not (key.startswith("keyframe_") and frame_ok) \
                        and (slot is None or slot in references):  # fmt: skip
                    fields[key] = "(a file)"
                    continue
                data = await value.read()
                suffix = file_suffix("reference_1" if slot else key, Path(value.filename or "").suffix,
                                     value.content_type, data[:16])  # fmt: skip
                if slot is not None:  # its place in the list is known once every field is read
                    references[slot] = (data, suffix)
                    continue
                name = key if not key.startswith("keyframe_") else f"keyframe_{len(keyframes)}"
                if name.startswith("keyframe_"):
                    keyframes.append({"image": "(a file)", "frame": int(frame)})
                files[name], named[name] = (data, suffix), key
            elif _reference_slot(key, "reference_label_") is not None:
                labels[_reference_slot(key, "reference_label_")] = value
            elif key in ("loras", "segments"):
                try:
                    fields[key] = json.loads(value)
                except json.JSONDecodeError:
                    fields[key] = value  # the model's validation names it
            else:
                fields[key] = value
        if "image" not in files:
            raise refuse(422, note("api.photo_missing"), lang)
        fields.pop("image", None)
        for slot in sorted(set(labels) - set(references)):  # a label without its file: refused, not dropped
            raise refuse(422, note("studio.reference_label_only", slot=slot, label=str(labels[slot])[:60]), lang)
        if keyframes:
            fields["keyframes"] = keyframes
        if references:  # reference_2 and reference_4 alone are the first and the second reference
            fields["references"] = [{"image": "(a file)", "label": labels.get(slot, "")} for slot in sorted(references)]
            for index, slot in enumerate(sorted(references), start=1):
                files[f"reference_{index}"], named[f"reference_{index}"] = references[slot], f"reference_{slot}"
        if "soundtrack" in files:
            fields["soundtrack"] = "(a file)"
        return files, fields, named
    try:
        fields = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RequestValidationError([{"type": "json_invalid", "loc": ("body",), "msg": "the body is not JSON",
                                       "input": None}]) from None  # fmt: skip
    if not isinstance(fields, dict):
        raise RequestValidationError([{"type": "dict_type", "loc": ("body",), "msg": "the body must be a JSON object",
                                       "input": None}])  # fmt: skip
    return {}, fields, {}


def _reference_slot(key: str, prefix: str) -> int | None:
    """The slot (1 to MAX_REFERENCES) of a multipart field named PREFIX1, PREFIX2, ...; None for any other field."""
    slot = key.removeprefix(prefix) if key.startswith(prefix) else ""
    return int(slot) if slot in {str(n) for n in range(1, MAX_REFERENCES + 1)} else None


def _json_field(name: str, data_url: bool = False) -> str:
    """A job's file named as the client's JSON holds it: references[0].image for the first reference;
    keyframes[2].image for the third keyframe (keyframe_2 where its data URL is refused, as before)."""
    if name.startswith("reference_"):
        return f"references[{int(name[10:]) - 1}].image"
    if name.startswith("keyframe_") and not data_url:
        return f"keyframes[{name[9:]}].image"
    return name


def _too_large(name: str, shown: str, size: int, limit_mb: float) -> Message:
    """A 413's words for the file `name` (the store's name), shown as the client sent it: a photo, or
    another file (a reference clip, a soundtrack)."""
    photo = name in ("image", "last_image") or name.startswith("keyframe_")
    return note("api.photo_too_large" if photo else "api.file_too_large", field=shown, size_mb=_mb(size),
                limit_mb=limit_mb)  # fmt: skip


def _data_url(value: str | None, lang: str, refuse, field: str = "image", name: str = "image") -> tuple[bytes, str]:
    """A file (a photo, a reference clip, a soundtrack: the store's `name`) sent as a data URL in the
    field `field`: its bytes and its file's suffix."""
    if not value:
        raise refuse(422, note("api.photo_missing"), lang)
    head, _, data = value.partition(",")
    if not head.startswith("data:") or ";base64" not in head:
        example = "data:audio/wav;base64,..." if name == "soundtrack" else "data:image/png;base64,..."
        raise refuse(422, note("api.photo_not_data_url", field=field, example=example), lang)
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise refuse(422, note("api.photo_bad_base64", field=field), lang) from None
    return raw, file_suffix(name, media_type=head[5:].split(";")[0], head=raw[:16])


def _mb(size: int) -> float:
    return round(size / 1024**2, 1)
