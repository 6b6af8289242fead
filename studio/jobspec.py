"""A job as scripts send it (the REST API's JSON, a line of `i2v batch`): GenerationRequest's knobs by
name and with their rules, except the files: the photo comes on its own (uploaded, or a path beside
the batch file), LoRAs are named from the server's LoRA folder (never a path). Unknown fields are
refused. `form_of` turns one into the studio's form."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from i2v.request import GenerationRequest


class LoraName(BaseModel):
    """A LoRA of the server's LoRA folder, by file name (never a path)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=255, description="a .safetensors file of the server's LoRA folder")
    weight: float = Field(1.0, ge=-4.0, le=4.0)
    weight_2: float | None = Field(None, ge=-4.0, le=4.0, description="Wan 2.2 A14B's second expert's weight")


def _job_fields() -> dict[str, Any]:
    """GenerationRequest's knobs, by name and with their rules, except the files: a photo is
    uploaded (`image`, a data URL in JSON), LoRAs are named from the server's folder."""
    fields: dict[str, Any] = {}
    for name, info in GenerationRequest.model_fields.items():
        if name in ("image", "last_image", "loras", "model"):
            continue
        fields[name] = (info.annotation, info)
    fields["model"] = (str | None, Field(None, min_length=1, max_length=100,
                                         description="a model id of GET /api/v1/models; left out: the server's default"))  # fmt: skip
    fields["image"] = (str | None, Field(None, description="the photo as a data URL: data:image/png;base64,... "
                                         "(JSON); in a multipart form, a file field instead"))  # fmt: skip
    fields["loras"] = (list[LoraName], Field(default_factory=list, max_length=8))
    fields["refine"] = (bool, Field(False, description="refine the prompt with the server's LLM first"))
    return fields


JobIn = create_model("JobIn", __config__=ConfigDict(extra="forbid"), **_job_fields())


def form_of(job: BaseModel, default_model: str) -> dict:
    """The studio's form for a job: the knobs by name; with refine, the prompt is the person's words
    and the refiner writes the model's."""
    values = job.model_dump(exclude={"image", "refine", "loras"}, exclude_none=True)
    values["model"] = job.model or default_model
    values["loras"] = [lora.model_dump() for lora in job.loras]
    if job.refine:
        values.update(words=job.prompt, prompt="", auto_refine=True)
    else:
        values.update(words=job.prompt, auto_refine=False)
    return values
