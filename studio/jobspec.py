"""A job as scripts send it (the REST API's JSON, a line of `i2v batch`): GenerationRequest's knobs by
name and with their rules, except the files: the photos (the first, the end photo, keyframes) come
as data URLs or uploaded files (the API) or paths beside the batch file (batch), never a path on the
server; LoRAs are named from the server's LoRA folder. Unknown fields are refused. `form_of` turns
one into the studio's form, and `photos_of` lists its photos besides the first."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from i2v.request import GenerationRequest

from .store import other_photos


class LoraName(BaseModel):
    """A LoRA of the server's LoRA folder, by file name (never a path)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=255, description="a .safetensors file of the server's LoRA folder")
    weight: float = Field(1.0, ge=-4.0, le=4.0)
    weight_2: float | None = Field(None, ge=-4.0, le=4.0, description="Wan 2.2 A14B's second expert's weight")


class KeyframeIn(BaseModel):
    """A photo the video passes through at a chosen frame (models that take keyframes)."""

    model_config = ConfigDict(extra="forbid")
    image: str = Field(min_length=1, description="the photo: a data URL (API), or a path beside the file (batch)")
    frame: int = Field(ge=0, le=1023, description="the frame index it stands at (0: the first frame)")


def _job_fields() -> dict[str, Any]:
    """GenerationRequest's knobs, by name and with their rules, except the files: a photo is
    uploaded (`image`, a data URL in JSON), LoRAs are named from the server's folder."""
    fields: dict[str, Any] = {}
    for name, info in GenerationRequest.model_fields.items():
        if name in ("image", "last_image", "keyframes", "loras", "model"):
            continue
        fields[name] = (info.annotation, info)
    fields["model"] = (str | None, Field(None, min_length=1, max_length=100,
                                         description="a model id of GET /api/v1/models; left out: the server's default"))  # fmt: skip
    fields["image"] = (str | None, Field(None, description="the photo as a data URL: data:image/png;base64,... "
                                         "(JSON); in a multipart form, a file field instead"))  # fmt: skip
    fields["last_image"] = (str | None, Field(None, description="a photo to end on (models that take one): a data URL "
                                              "(API; in a multipart form, a file field), or a path beside the file "
                                              "(batch)"))  # fmt: skip
    fields["keyframes"] = (list[KeyframeIn], Field(default_factory=list, max_length=16,
                                                   description="photos at chosen frames (models that take keyframes); "
                                                   "in a multipart form, files named keyframe_FRAME"))  # fmt: skip
    fields["loras"] = (list[LoraName], Field(default_factory=list, max_length=8))
    fields["refine"] = (bool, Field(False, description="refine the prompt with the server's LLM first (one "
                                    "prompt: not with segments)"))  # fmt: skip
    return fields


# A prompt given beside segments must be the first segment's: the engine's check step says so (in
# the request's language), for the page, the API and batch alike.
JobIn = create_model("JobIn", __config__=ConfigDict(extra="forbid"), **_job_fields())


def form_of(job: BaseModel, default_model: str) -> dict:
    """The studio's form for a job: the knobs by name; with refine, the prompt is the person's words
    and the refiner writes the model's."""
    values = job.model_dump(exclude={"image", "last_image", "keyframes", "refine", "loras"}, exclude_none=True)
    values["model"] = job.model or default_model
    values["loras"] = [lora.model_dump() for lora in job.loras]
    if job.keyframes:  # their photos come beside the form (`photos_of`), named keyframe_N
        values["keyframes"] = [{"frame": keyframe.frame} for keyframe in job.keyframes]
    if job.refine:  # `refine` stays in the form: the studio refuses it beside segments
        values.update(words=job.prompt, prompt="", auto_refine=True, refine=True)
    else:
        values.update(words=job.prompt, auto_refine=False)
    return values


def photos_of(job: BaseModel) -> dict[str, str]:
    """A job's photos besides the first, by the store's names ("last_image", "keyframe_N"): data URLs
    or paths, as the job gave them."""
    return other_photos(job.model_dump(include={"last_image", "keyframes"}))  # the store's own naming
