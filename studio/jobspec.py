"""A job as scripts send it (the REST API's JSON, a line of `i2v batch`): GenerationRequest's knobs by
name and with their rules, except the files: the photos (the first, the end photo, keyframes), the
references (photos or MP4 clips) and the soundtrack come as data URLs or uploaded files (the API) or
paths beside the batch file (batch), never a path on the server; LoRAs are named from the server's
LoRA folder. Unknown fields are refused. `form_of` turns one into the studio's form, and `files_of`
lists its files besides the first photo.

The style knobs' descriptions say what each really changes (`STYLE_KNOBS`): the API's schema is where
a client reads which are prompt phrasing only."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator
from pydantic.fields import FieldInfo

from i2v.request import MAX_REFERENCES, GenerationRequest

from .store import other_files


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


class ReferenceIn(BaseModel):
    """A subject the video holds (models that take references): a photo or a short MP4 clip, and who
    or what it is."""

    model_config = ConfigDict(extra="forbid")
    image: str = Field(min_length=1, description="the photo or MP4 clip: a data URL (data:image/png;base64,... or "
                       "data:video/mp4;base64,...; API), or a path beside the file (batch)")  # fmt: skip
    label: str = Field("", max_length=200, description="who or what it is (\"the grey cat\"), as the prompt names it")


# What each style knob really changes, family by family: the API's field descriptions (issue 15).
STYLE_KNOBS = {
    "template": "a motion template of GET /api/v1/templates: its motion words (prompt phrasing, for models that read "
                "a prompt), its camera move and intensity where camera_motion is static and motion_intensity left "
                "out (each changes what that knob changes, below), its length where num_frames and duration are "
                "left out, and its guidance where guidance_scale is (frame count and guidance: not phrasing)",
    "style": "the look: realistic, cinematic, anime, 3d, watercolour, oil_painting, pixel_art or claymation. Prompt "
             "phrasing only (its words are added where the prompt does not say them; with refine, the refiner "
             "writes them in); a model that reads no prompt refuses it",
    "color_palette": "warm, cool or neutral colours: prompt phrasing for models that read a prompt; a colour grade of "
                     "the frames for those that read none (SVD, the camera engine)",
    "motion_intensity": "how much moves, 0.1 (barely) to 1.5 (a lot); 1 is the model's usual. Prompt phrasing (the "
                        "refiner's 0-1 scale) for models that read a prompt; SVD's motion bucket; the camera "
                        "engine's amplitude",
    "camera_motion": "the camera move: the camera engine renders it; for models that read a prompt, prompt phrasing "
                     "(with refine: kept by the refiner when not static; static lets it pick one from the prompt); a "
                     "model that reads no prompt and renders no move (SVD) refuses a move",
    "fps": "frames per second of the video file, up to 60: where the model makes fewer, the frames between are "
           "interpolated, where it makes more, frames are dropped evenly; the motion keeps its speed (not phrasing)",
    "duration": "seconds of video: as many segments as that takes (with one prompt, each segment continues it); "
                "frame count, not phrasing",
}  # fmt: skip


def _job_fields() -> dict[str, Any]:
    """GenerationRequest's knobs, by name and with their rules, except the files: a photo is
    uploaded (`image`, a data URL in JSON), and so are references and a soundtrack; LoRAs are named
    from the server's folder."""
    files = ("image", "last_image", "keyframes", "loras", "model", "references", "soundtrack")
    fields: dict[str, Any] = {}
    for name, info in GenerationRequest.model_fields.items():
        if name in files:
            continue
        if name in STYLE_KNOBS:
            info = FieldInfo.merge_field_infos(info, description=STYLE_KNOBS[name])
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
    fields["references"] = (list[ReferenceIn], Field(default_factory=list, max_length=MAX_REFERENCES,
                                                     description="subjects to hold, each a photo or a short MP4 clip "
                                                     "with a label (models that take references); in a multipart "
                                                     "form, files named reference_N with fields reference_label_N, "
                                                     f"N from 1 to {MAX_REFERENCES}"))  # fmt: skip
    fields["soundtrack"] = (str | None, Field(None, description="an audio file (WAV, MP3, M4A, ...) laid under the "
                                              "video, trimmed or looped to its length (models that make no sound of "
                                              "their own): a data URL (data:audio/wav;base64,...; in a multipart "
                                              "form, a file field), or a path beside the file (batch)"))  # fmt: skip
    fields["loras"] = (list[LoraName], Field(default_factory=list, max_length=8))
    fields["refine"] = (bool, Field(False, description="refine the prompt with the server's LLM first (one "
                                    "prompt: not with segments)"))  # fmt: skip
    return fields


def _validators(fields: dict[str, Any]) -> dict[str, Any]:
    """GenerationRequest's own field validators (the spellings it takes: "3D", "Watercolor") for the
    knobs a job keeps as they are."""
    found = {}
    for name, decorator in GenerationRequest.__pydantic_decorators__.field_validators.items():
        names, info = decorator.info.fields, decorator.info
        if all(field in fields for field in names) and not set(names) & {"image", "last_image", "references",
                                                                        "soundtrack"}:  # fmt: skip
            method = getattr(GenerationRequest, name)
            found[name] = field_validator(*names, mode=info.mode)(lambda cls, value, method=method: method(value))
    return found


# A prompt given beside segments must be the first segment's: the engine's check step says so (in
# the request's language), for the page, the API and batch alike.
_FIELDS = _job_fields()
JobIn = create_model("JobIn", __config__=ConfigDict(extra="forbid"), __validators__=_validators(_FIELDS), **_FIELDS)


# What POST /api/v1/refine takes beside the words: the style knobs the refiner honours, and the
# settings its advice is estimated for (the model's defaults where left out).
REFINE_KNOBS = ("template", "style", "color_palette", "motion_intensity", "camera_motion", "height", "width",
                "num_inference_steps", "memory_strategy", "vae_tiling", "speed")  # fmt: skip


class _Refine(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: str = Field("", max_length=4000, description="a short prompt, in any language (may be left out "
                        "with a template: its motion is the words)")  # fmt: skip
    model: str | None = Field(None, max_length=100, description="a model id of GET /api/v1/models; left out: the "
                              "server's default")  # fmt: skip
    image: str | None = Field(None, description="the photo as a data URL, for an LLM that can see")
    references: list[ReferenceIn] = Field(default_factory=list, max_length=MAX_REFERENCES,
                                          description="subjects the prompt names, each a photo or MP4 clip as a "
                                          "data URL with a label: the refiner names each by what it shows (an "
                                          "LLM that can see), else by its label")  # fmt: skip


def _refine_fields() -> dict[str, Any]:
    fields = {name: _FIELDS[name] for name in REFINE_KNOBS}
    camera = FieldInfo.merge_field_infos(_FIELDS["camera_motion"][1], default=None,
                                         description="the camera move the prompt describes; left out: the "
                                         "template's, else the refiner picks one from the words")  # fmt: skip
    fields["camera_motion"] = (_FIELDS["camera_motion"][0] | None, camera)
    return fields


RefineIn = create_model("RefineIn", __base__=_Refine, __validators__=_validators(_refine_fields()),
                        **_refine_fields())  # fmt: skip


def form_of(job: BaseModel, default_model: str) -> dict:
    """The studio's form for a job: the knobs by name; with refine, the prompt is the person's words
    and the refiner writes the model's. The files come beside the form (`files_of`): the form holds
    each reference's label, and the store puts its file in."""
    values = job.model_dump(exclude={"image", "last_image", "keyframes", "refine", "loras", "references",
                                     "soundtrack"}, exclude_none=True)  # fmt: skip
    values["model"] = job.model or default_model
    values["loras"] = [lora.model_dump() for lora in job.loras]
    if job.keyframes:  # their photos come beside the form (`files_of`), named keyframe_N
        values["keyframes"] = [{"frame": keyframe.frame} for keyframe in job.keyframes]
    if job.references:  # their files come beside the form, named reference_N
        values["references"] = [{"label": reference.label} for reference in job.references]
    if job.refine:  # `refine` stays in the form: the studio refuses it beside segments
        values.update(words=job.prompt, prompt="", auto_refine=True, refine=True)
    else:
        values.update(words=job.prompt, auto_refine=False)
    return values


def files_of(job: BaseModel) -> dict[str, str]:
    """A job's files besides the first photo, by the store's names ("last_image", "keyframe_N",
    "reference_N", "soundtrack"): data URLs or paths, as the job gave them."""
    form = job.model_dump(include={"last_image", "keyframes", "soundtrack"})
    form["references"] = [{"source": reference.image} for reference in job.references]
    return other_files(form)  # the store's own naming
