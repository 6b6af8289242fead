"""The check step: a request in, the request as it will run out, or a refusal that names the value
and the rule. Pure: it reads the photo and the model's configuration, never a GPU, and changes no
state; where to put the weights (memory_strategy "auto") is the engine's next step.

Every default is filled in from the family, every size and frame count moved to the family's rule
(the family's room says how), and each change is a note in `adjustments`.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field, replace

from PIL import Image

from messages import Message, note

from .errors import InvalidInput
from .families import Family, ModelSource, resolve
from .images import open_photo
from .request import MAX_SEED, GenerationRequest, LeverReport

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckedRequest:
    """A request with every default filled in and every rule applied (`knobs`), its model, its photos
    as RGB, and what was changed on the way (`adjustments`)."""

    knobs: GenerationRequest
    source: ModelSource
    photo: Image.Image
    last_photo: Image.Image | None = None
    adjustments: tuple[Message, ...] = field(default_factory=tuple)
    levers: tuple[LeverReport, ...] = field(default_factory=tuple)  # filled in by the engine's lever step
    explicit: frozenset[str] = frozenset()  # levers the person set on their own (not from `speed`)

    @property
    def family(self) -> Family:
        return self.source.family

    def with_(self, *notes: Message, **knobs) -> CheckedRequest:
        """The same request with `knobs` changed and `notes` said."""
        return replace(self, knobs=self.knobs.model_copy(update=knobs),
                       adjustments=(*self.adjustments, *notes))  # fmt: skip


def check(request: GenerationRequest) -> CheckedRequest:
    """Fill defaults and apply the model's rules. Rounding is reported; breaking a rule is an error."""
    from .lora import takes_loras
    from .speed import asked_levers, turbo_for

    source = resolve(request.model.strip())
    family = source.family
    notes: list[Message] = []
    if request.loras and not (family.pipeline and takes_loras(family.pipeline_class())):
        raise InvalidInput("lora.not_supported", model=family.id, file=request.loras[0].name)
    sources = [lora.source for lora in request.loras]
    for index, lora in enumerate(request.loras):
        if lora.source in sources[:index]:
            raise InvalidInput("lora.duplicate", file=lora.name)
    steps, guidance = family.num_inference_steps, family.guidance_scale
    if request.speed == "turbo" and family.pipeline:
        turbo = turbo_for(family)
        steps, guidance = turbo.num_inference_steps, turbo.guidance_scale
        if request.num_inference_steps is None and request.guidance_scale is None:
            notes.append(note("speed.turbo_settings", num_inference_steps=steps, guidance_scale=guidance))
        if turbo.kind == "checkpoint":  # the distilled weights are another checkpoint
            if source.local:  # a folder of the model's own weights: its distilled weights are not there
                raise InvalidInput("speed.turbo_local", model=family.id, hub_id=turbo.hub_id)
            source = source.model_copy(update={"location": turbo.hub_id})

    asked = request.height is not None or request.width is not None
    height, width = family.fit_size(request.height or family.height, request.width or family.width, asked, source,
                                    notes)  # fmt: skip
    num_frames = family.round_frames(request.num_frames or family.num_frames, notes)
    maximum = family.max_frames_for(source)
    if num_frames > maximum:
        raise InvalidInput("request.too_many_frames", num_frames=num_frames, model=family.id, maximum=maximum)
    if num_frames < family.min_frames:
        raise InvalidInput("request.too_few_frames", num_frames=num_frames, model=family.id, minimum=family.min_frames)
    if request.last_image is not None and not family.end_frame:
        raise InvalidInput("request.no_end_frame", model=family.id)

    prompt, negative = request.prompt, request.negative_prompt
    if not family.text_prompt:
        if prompt.strip() and not family.preview:  # a preview keeps the words with the video
            notes.append(note("request.no_text_prompt", model=family.id))
            prompt = ""
        negative = ""
    vae_tiling = request.vae_tiling
    if vae_tiling and not family.vae_tiling:
        if not family.preview:
            notes.append(note("request.no_vae_tiling", model=family.id))
        vae_tiling = False

    photo, photo_notes = open_photo(request.image)
    last_photo = None
    if request.last_image is not None:
        last_photo, last_notes = open_photo(request.last_image)
        photo_notes += last_notes
    knobs = request.model_copy(update=dict(
        model=source.name, prompt=prompt, negative_prompt=negative, height=height, width=width, num_frames=num_frames,
        fps=request.fps or family.fps,
        # A family without a pipeline (the camera engine) has no steps and no guidance: None.
        num_inference_steps=(request.num_inference_steps or steps) if family.pipeline else None,
        guidance_scale=(request.guidance_scale if request.guidance_scale is not None else guidance)
        if family.pipeline else None,
        seed=request.seed if request.seed is not None else secrets.randbelow(MAX_SEED + 1),
        memory_strategy=request.memory_strategy if family.pipeline else "none", vae_tiling=vae_tiling,
        **asked_levers(request),
    ))  # fmt: skip
    for said in notes + photo_notes:
        log.info("%s", said)
    explicit = frozenset(name for name in ("quantize", "compile", "step_cache") if getattr(request, name) is not None)
    return CheckedRequest(knobs, source, photo, last_photo, tuple(notes + photo_notes), explicit=explicit)
