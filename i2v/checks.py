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

from .audio import Audio, read_soundtrack
from .chain import chained_frames
from .errors import InvalidInput
from .families import Family, ModelSource, resolve
from .images import open_photo
from .phrasing import refuse
from .references import open_references
from .request import MAX_LONG_SIDE, MAX_SEED, MAX_SHORT_SIDE, GenerationRequest, LeverReport, Segment
from .templates import get_template

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckedRequest:
    """A request with every default filled in and every rule applied (`knobs`), its model, its photos
    as RGB, and what was changed on the way (`adjustments`)."""

    knobs: GenerationRequest
    source: ModelSource
    photo: Image.Image
    last_photo: Image.Image | None = None
    keyframe_photos: tuple[tuple[int, Image.Image], ...] = ()  # (frame index, photo), in frame order
    total_frames: int | None = None  # a long video's frames before interpolation (the last segment trimmed to it)
    adjustments: tuple[Message, ...] = field(default_factory=tuple)
    levers: tuple[LeverReport, ...] = field(default_factory=tuple)  # filled in by the engine's lever step
    explicit: frozenset[str] = frozenset()  # levers the person set on their own (not from `speed`): for speed.decide
    file_fps: int | None = None  # the file's fps; knobs.fps is the model's, until `finish` retimes (None: the same)
    fps_factor: int = 1  # the interpolation that fps and `interpolate` take together: a power of 2, at least `interpolate`
    last_segment_frames: int | None = None  # a duration's last segment, when it needs fewer frames than the others
    stopped_kept: bool = False  # a long video stopped, its finished segments kept (the engine's)
    latent_upscale: bool = False  # upscale 2 made inside the render by the family's latent upsampler (the engine's choice)
    reference_photos: tuple[tuple[str, Image.Image], ...] = ()  # (label, image): photos and clips' sampled frames
    # The video's sound: the soundtrack, read here (the first seconds the video needs, or all of a shorter
    # file), or what a family that makes its own made with the frames (the render's). The export lays it
    # under the file's frames, trimmed or looped; interpolation and upscaling keep the duration.
    audio: Audio | None = None

    @property
    def family(self) -> Family:
        return self.source.family

    def with_(self, *notes: Message, **knobs) -> CheckedRequest:
        """The same request with `knobs` changed and `notes` said."""
        return replace(self, knobs=self.knobs.model_copy(update=knobs),
                       adjustments=(*self.adjustments, *notes))  # fmt: skip


MAX_OUTPUT_GB = 6.0  # a finished video is held in memory as 8-bit frames before it is written


def check(request: GenerationRequest) -> CheckedRequest:
    """Fill defaults and apply the model's rules. Rounding is reported; breaking a rule is an error."""
    from .lora import takes_loras
    from .speed import asked_levers, turbo_for

    source = resolve(request.model.strip())
    family = source.family
    notes: list[Message] = []
    refuse_gpus(family, request)
    if request.loras and not (family.pipeline and takes_loras(family.pipeline_class())):
        raise InvalidInput("lora.not_supported", model=family.id, file=request.loras[0].name)
    sources = [lora.source for lora in request.loras]
    for index, lora in enumerate(request.loras):
        if lora.source in sources[:index]:
            raise InvalidInput("lora.duplicate", file=lora.name)
    template = get_template(request.template) if request.template else None
    refuse(family, template=template, style=request.style, motion_intensity=request.motion_intensity,
           camera_motion=request.camera_motion)  # fmt: skip
    explicit = {name for name in ("quantize", "compile", "step_cache") if getattr(request, name) is not None}
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
    fps, file_fps, fps_factor = _rates(request, family, notes)  # `fps` is the model's: frames and durations count at it
    maximum = family.max_frames_for(source)
    if template is not None:
        request = _with_template(request, template, source, fps, maximum, guidance, notes)
    wanted = max(1, round(request.duration * fps)) if request.duration is not None else None
    if wanted is not None and (request.num_frames is None or wanted < request.num_frames):
        # A duration: one call when it covers it, else segments of the family's own length (or the
        # person's); a family that makes long clips itself, or drifts when chained, makes as much as
        # one call can. A call never makes more frames than the duration needs, but for its rule.
        one_call = family.long_video or not family.chains_well
        base = request.num_frames or family.num_frames
        per_call = min(wanted, maximum) if one_call or wanted < base else base
        num_frames = _round_up(family, per_call, maximum, [])  # a trim, if any, is said below (_trimmed)
        if request.num_frames is not None and num_frames != request.num_frames:
            notes.append(note("request.frames_for_duration", value=request.num_frames, new=num_frames,
                              duration=request.duration, fps=fps))  # fmt: skip
    else:
        num_frames = family.round_frames(request.num_frames or family.num_frames, notes)
    if num_frames > maximum:
        raise InvalidInput("request.too_many_frames", num_frames=num_frames, model=family.id, maximum=maximum)
    if num_frames < family.min_frames:
        raise InvalidInput("request.too_few_frames", num_frames=num_frames, model=family.id, minimum=family.min_frames)
    if request.last_image is not None and not family.end_frame:
        raise InvalidInput("request.no_end_frame", model=family.id)
    if request.loop and not family.end_frame:
        raise InvalidInput("request.no_loop", model=family.id)
    if request.loop and request.last_image is not None:
        raise InvalidInput("request.loop_and_last_image")
    refuse_references(family, len(request.references))
    if request.keyframes and not family.keyframes:
        raise InvalidInput("request.no_keyframes", model=family.id)
    if family.multi_prompt:  # one call makes every segment: its prompts are that call's schedule
        segments, total_frames = _one_call(request, family, num_frames, wanted, fps, maximum, notes)
    else:
        segments, total_frames = _segments(request, family.id, num_frames, wanted, fps, notes)
    if request.soundtrack is not None and family.audio:
        raise InvalidInput("sound.model_makes_sound", model=family.id, file=request.soundtrack.name)
    if family.audio and len(segments) > 1 and not family.multi_prompt:  # each call would start its sound anew
        raise InvalidInput("sound.one_call", model=family.id, segments=len(segments), maximum=maximum,
                           seconds=maximum / fps, fps=fps)  # fmt: skip
    chained = len(segments) > 1 and not family.multi_prompt  # calls one after another, each from the last frame
    last_frames = None  # a duration's last call makes only the frames it still needs (a pipeline's: time is GPU time)
    if total_frames is not None and wanted is not None and chained and family.pipeline:
        needed = total_frames - chained_frames(num_frames, len(segments) - 1) + 1  # the last call starts on one
        last_frames = _round_up(family, max(needed, family.min_frames, 2), num_frames, [])
        last_frames = None if last_frames >= num_frames else last_frames
    if chained and not family.chains_well:  # steered to a family that makes long clips itself
        from .families import all_families

        long_ones = ", ".join(f.id for f in all_families().values() if f.long_video) or "none"
        notes.append(note("request.chains_badly", model=family.id, segments=len(segments), long_families=long_ones))
    if request.keyframes and len(segments) > 1:
        raise InvalidInput("request.keyframes_one_segment", segments=len(segments))
    for keyframe in request.keyframes:
        if keyframe.frame >= num_frames:
            raise InvalidInput("request.keyframe_beyond", frame=keyframe.frame, num_frames=num_frames)
    family.check_conditions(num_frames, request.last_image is not None or request.loop,
                            [keyframe.frame for keyframe in request.keyframes], len(segments))  # fmt: skip
    frames_made = total_frames or num_frames
    final_frames = (frames_made - 1) * fps_factor + 1  # the most memory holds: interpolated, before a retime drops any
    final_w, final_h = width * request.upscale, height * request.upscale
    if max(final_w, final_h) > MAX_LONG_SIDE or min(final_w, final_h) > MAX_SHORT_SIDE:
        raise InvalidInput("request.upscale_too_big", width=width, height=height, factor=request.upscale,
                           final_width=final_w, final_height=final_h)  # fmt: skip
    size_gb = final_frames * final_w * final_h * 3 / 1e9
    if size_gb > MAX_OUTPUT_GB:
        raise InvalidInput("request.video_too_big", num_frames=final_frames, width=final_w, height=final_h,
                           size_gb=size_gb, limit_gb=MAX_OUTPUT_GB)  # fmt: skip

    prompt, negative = request.prompt, request.negative_prompt
    if not family.text_prompt:
        worded = prompt.strip() or any(segment.prompt.strip() for segment in request.segments)
        if worded and not family.preview:  # a preview keeps the words with the video
            notes.append(note("request.no_text_prompt", model=family.id))
            prompt = ""
        negative = ""
    if negative.strip() and not family.negative_prompt:
        notes.append(note("request.no_negative_prompt", model=family.id))
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
    keyframe_photos = []
    for keyframe in sorted(request.keyframes, key=lambda k: k.frame):
        opened, keyframe_notes = open_photo(keyframe.image)
        keyframe_photos.append((keyframe.frame, opened))
        photo_notes += keyframe_notes
    reference_photos, reference_notes = open_references(request.references)
    photo_notes += reference_notes
    if reference_photos:  # each call takes them all: the shortest call (a duration's last segment) must hold them
        family.check_references(min(num_frames, last_frames or num_frames), len(reference_photos))
    # The soundtrack, before any weights load: as much as the video will last (interpolation keeps it)
    audio = read_soundtrack(request.soundtrack, (total_frames or num_frames) / fps) if request.soundtrack else None
    seed = request.seed if request.seed is not None else secrets.randbelow(MAX_SEED + 1)
    if family.multi_prompt:  # one call, one seed for every segment: the first segment's, else the video's
        seed = segments[0].seed if segments[0].seed is not None else seed
        segments = [segment.model_copy(update={"seed": seed}) for segment in segments]
    reads = family.text_prompt or family.preview  # a model without a text prompt keeps the segments' seeds only
    segments = [Segment(prompt=(segment.prompt if segment.prompt.strip() else prompt) if reads else "",
                        seed=segment.seed if segment.seed is not None else (seed + index) % (MAX_SEED + 1))
                for index, segment in enumerate(segments)]  # fmt: skip
    if request.segments and reads:
        prompt = segments[0].prompt  # the video's prompt is its first segment's
    prompt, segments = _styled(prompt, segments, family, template, request, notes)
    if len(segments) == 1:
        seed = segments[0].seed  # a single segment's own seed is the video's
    knobs = request.model_copy(update=dict(
        model=source.name, prompt=prompt, negative_prompt=negative, height=height, width=width, num_frames=num_frames,
        fps=fps, segments=segments if len(segments) > 1 else [], duration=request.duration,
        # A family without a pipeline (the camera engine) has no steps and no guidance: None.
        num_inference_steps=(request.num_inference_steps or steps) if family.pipeline else None,
        guidance_scale=(request.guidance_scale if request.guidance_scale is not None else guidance)
        if family.pipeline else None,
        seed=seed,
        memory_strategy=request.memory_strategy if family.pipeline else "none", vae_tiling=vae_tiling,
        **asked_levers(request),
    ))  # fmt: skip
    if knobs.gpus > 1:
        knobs = _across_gpus(knobs, source, min(num_frames, last_frames or num_frames), notes)
    for said in notes + photo_notes:
        log.info("%s", said)
    return CheckedRequest(knobs, source, photo, last_photo, tuple(keyframe_photos), total_frames,
                          tuple(notes + photo_notes), explicit=frozenset(explicit), last_segment_frames=last_frames,
                          reference_photos=reference_photos, audio=audio, file_fps=file_fps,
                          fps_factor=fps_factor)  # fmt: skip


def refuse_references(family: Family, count: int) -> None:
    """Refuse `count` references (photos or clips) for a family that takes none, naming the families
    that do: the check step's rule, and the studio's before it refines for them."""
    if count and not family.references:
        from .families import all_families

        takers = ", ".join(f.id for f in all_families().values() if f.references) or "none"
        raise InvalidInput("reference.not_supported", model=family.id, families=takers)


def refuse_gpus(family: Family, request: GenerationRequest) -> None:
    """Refuse a video across several GPUs (`gpus` > 1) that cannot be one: the camera engine (one
    CPU process), a family whose transformer diffusers cannot split (no context parallelism, named
    with the families that can), CPU offload (its hooks and context parallelism's do not mix in
    diffusers: each GPU holds every weight), a step cache asked for by name (each GPU would decide
    alone whether to skip a step, and the others would wait for it forever), and compile asked for
    by name (torch.compile stopped on diffusers' split attention: torch 2.11, 2 H200s)."""
    gpus = request.gpus
    if gpus == 1:
        return
    if not family.pipeline:
        raise InvalidInput("parallel.camera", gpus=gpus)
    if not family.context_parallel:
        from .families import all_families

        able = ", ".join(f.id for f in all_families().values() if f.context_parallel) or "none"
        raise InvalidInput("parallel.not_supported", model=family.id, gpus=gpus, families=able)
    if request.memory_strategy not in ("auto", "none"):
        raise InvalidInput("parallel.offload", gpus=gpus, strategy=request.memory_strategy)
    if request.step_cache not in (None, "none"):
        raise InvalidInput("parallel.step_cache", gpus=gpus, step_cache=request.step_cache)
    if request.compile:
        raise InvalidInput("parallel.compile", gpus=gpus)


def _across_gpus(knobs: GenerationRequest, source: ModelSource, call_frames: int,
                 notes: list[Message]) -> GenerationRequest:  # fmt: skip
    """The knobs of a video across `knobs.gpus` GPUs: every weight on each GPU (memory strategy
    auto becomes none), no step cache and no compile (speed's are dropped, said), and the limits
    of diffusers' context parallelism, which splits the video's tokens and the transformer's heads
    between the GPUs: every call's tokens (`call_frames`: the shortest call's frames) split evenly,
    at least one a GPU (diffusers' even split asserts it; its "anything" split of uneven ones
    gathers tensors of unequal sizes, which gloo cannot), and a head count the GPUs divide, or one
    that diffusers can pad (the padding under the heads each GPU then gets)."""
    family, gpus = source.family, knobs.gpus
    update: dict = {}
    if knobs.memory_strategy == "auto":
        update["memory_strategy"] = "none"
        notes.append(note("parallel.weights_on_each", gpus=gpus, model=family.id))
    if knobs.step_cache != "none":
        update["step_cache"] = "none"
        notes.append(note("parallel.no_step_cache", gpus=gpus, step_cache=knobs.step_cache, speed=knobs.speed))
    if knobs.compile:
        update["compile"] = False
        notes.append(note("parallel.no_compile", gpus=gpus, speed=knobs.speed))
    from .parallel import HEAD_KEYS, video_tokens

    for frames in sorted({knobs.num_frames, call_frames}):  # every call's tokens: a long video's last may be shorter
        tokens = video_tokens(family, knobs.height, knobs.width, frames)
        if tokens < gpus:
            raise InvalidInput("parallel.too_small", gpus=gpus, tokens=tokens, width=knobs.width, height=knobs.height,
                               num_frames=frames, model=family.id)  # fmt: skip
        if tokens % gpus:
            raise InvalidInput("parallel.uneven", gpus=gpus, tokens=tokens, width=knobs.width, height=knobs.height,
                               num_frames=frames, model=family.id, size=_even_size(family, knobs, frames))  # fmt: skip
    config = source.component_config("transformer") or {}  # weights not here yet: loading will say so
    for heads in (config[key] for key in HEAD_KEYS if config.get(key)):
        if not _heads_split(heads, gpus):
            padding = -heads % gpus
            able = ", ".join(str(n) for n in range(2, 9) if _heads_split(heads, n))
            raise InvalidInput("parallel.heads", model=family.id, gpus=gpus, heads=heads, padding=padding,
                               per_gpu=(heads + padding) // gpus, choices=able or "none")  # fmt: skip
    return knobs.model_copy(update=update)


def _even_size(family: Family, knobs: GenerationRequest, frames: int) -> str:
    """The size nearest below the request's whose tokens `knobs.gpus` GPUs divide, as WIDTHxHEIGHT
    (fewer pixels on one side), for a refusal's words."""
    from .parallel import video_tokens

    step, gpus = family.size_multiple, knobs.gpus
    sizes = [(knobs.width - k * step, knobs.height) for k in range(1, 8)] + \
            [(knobs.width, knobs.height - k * step) for k in range(1, 8)]  # fmt: skip
    for width, height in sorted(sizes, key=lambda size: -size[0] * size[1]):
        if width >= step and height >= step and video_tokens(family, height, width, frames) % gpus == 0:
            return f"{width}x{height}"
    return "none near it"


def _heads_split(heads: int, gpus: int) -> bool:
    """Whether Ulysses attention can share `heads` between `gpus`: they divide, or diffusers' padding
    to a multiple ("Ulysses anything") stays under the heads each GPU then gets."""
    padding = -heads % gpus
    return padding < (heads + padding) // gpus


def model_fps(family: Family, fps: int | None, interpolate: int) -> int:
    """The fps the model makes its frames at, for a request's `fps` (the file's, or None) and
    `interpolate`: a pipeline's own; the camera engine, which renders any, the asked fps over the
    asked interpolation (so that interpolation has frames to make), else its family's."""
    if fps is None or family.pipeline is not None:
        return family.fps
    return -(-fps // interpolate)


def _rates(request: GenerationRequest, family: Family, notes: list[Message]) -> tuple[int, int, int]:
    """The fps the model makes its frames at, the file's fps, and the interpolation factor between
    them (i2v/interpolate.py's `fps_factor`: at least the request's `interpolate`). A pipeline makes
    the family's own fps; the camera engine, which renders any, the asked fps over the asked
    interpolation (`model_fps`). Without an fps the file's is the model's times `interpolate`, at
    most 60. With one, the file's is it: the model's frames are interpolated up to it and retimed
    to it (said in `notes`), so the motion keeps its speed."""
    from .interpolate import fps_factor

    asked = request.interpolate
    model = model_fps(family, request.fps, asked)
    if request.fps is None:
        if model * asked > 60:
            raise InvalidInput("request.interpolate_fps", fps=model, factor=asked, final=model * asked)
        return model, model * asked, asked
    file = request.fps
    factor = fps_factor(model, file, asked)
    if factor > 1 and (factor != asked or model * factor != file):
        notes.append(note("fps.planned", fps=file, model=family.id, model_fps=model, factor=factor,
                          made_fps=model * factor))  # fmt: skip
    elif model * factor != file:
        notes.append(note("fps.planned_fewer", fps=file, model=family.id, model_fps=model))
    return model, file, factor


def _with_template(request: GenerationRequest, template, source: ModelSource, fps: int, maximum: int,
                   guidance: float | None, notes: list[Message]) -> GenerationRequest:  # fmt: skip
    """`request` with what `template` suggests where the person left it unset: its camera move and
    intensity (`templates.resolved`: a person's non-static move and any intensity win), and its
    length and guidance (`templates.suggestion`, as the studio's advice and `i2v templates` say
    them): the frames, when neither num_frames nor duration is set, and the guidance, a factor of
    the run's default `guidance` (the turbo's at speed turbo), when guidance_scale is unset. Each is
    said in `notes` (`fps`, the model's, and `maximum` name the rule); its words are the prompt's
    (`_styled`)."""
    from .templates import resolved, suggestion

    family = source.family
    frames, suggested = suggestion(template, family, source, request.speed, request.fps, request.interpolate)
    camera, intensity = resolved(template, request.camera_motion, request.motion_intensity)
    update: dict = {"template": template.name, "camera_motion": camera, "motion_intensity": intensity}
    notes.append(note("template.applied", template=template.name, camera_motion=camera, motion_intensity=intensity))
    kept = [name for name, mine in (("camera_motion", request.camera_motion != "static"),
                                    ("motion_intensity", request.motion_intensity is not None)) if mine]  # fmt: skip
    if request.num_frames is None and request.duration is None:
        update["num_frames"] = frames
        if round(template.seconds * fps) > maximum:  # the family's most is shorter
            notes.append(note("template.frames_capped", template=template.name, seconds=template.seconds,
                              model=family.id, num_frames=frames, fps=fps))  # fmt: skip
        else:
            notes.append(note("template.frames", template=template.name, num_frames=frames, seconds=template.seconds,
                              fps=fps))  # fmt: skip
    else:
        kept.append("num_frames" if request.num_frames is not None else "duration")
    if request.guidance_scale is None and suggested is not None:
        update["guidance_scale"] = suggested
        notes.append(note("template.guidance", template=template.name, guidance_scale=suggested,
                          factor=template.guidance_factor, model=family.id, default=guidance))  # fmt: skip
    elif request.guidance_scale is not None and suggested is not None:
        kept.append("guidance_scale")
    if kept:
        notes.append(note("template.yours_kept", template=template.name, knobs=", ".join(kept)))
    if not family.text_prompt:
        notes.append(note("template.no_words", template=template.name, model=family.id))
    return request.model_copy(update=update)


def _styled(prompt: str, segments: list[Segment], family: Family, template, request: GenerationRequest,
            notes: list[Message]) -> tuple[str, list[Segment]]:  # fmt: skip
    """The prompt and each segment's with the words of the style knobs (i2v/phrasing.py), said once in
    `notes`; for a family that reads no prompt, what each knob does instead (SVD's motion bucket, the
    camera engine's amplitude; a palette's grade is said when the frames are graded)."""
    from .phrasing import effect, phrase

    if not family.text_prompt:
        intensity = request.motion_intensity
        if intensity is not None and effect(family, "motion_intensity") == "bucket":
            notes.append(note("style.bucket", value=intensity, model=family.id, bucket=family.motion_bucket(intensity)))
        elif intensity is not None and effect(family, "motion_intensity") == "amplitude":
            notes.append(note("style.amplitude", value=intensity, percent=round(intensity * 100)))
        return prompt, segments
    knobs = dict(template=template, style=request.style, color_palette=request.color_palette,
                 motion_intensity=request.motion_intensity, camera_motion=request.camera_motion)  # fmt: skip
    said: list[Message] = []
    phrased = []
    for segment in segments:
        text, words = phrase(segment.prompt, family, **knobs)
        phrased.append(segment.model_copy(update={"prompt": text}))
        if words and (not said or said[0].code != "style.phrased"):
            said = words
    notes.extend(said)
    return phrased[0].prompt if phrased else phrase(prompt, family, **knobs)[0], phrased


def storyboard_shape(checked: CheckedRequest) -> tuple[int, float]:
    """A storyboard's shape for a checked request: how many prompts (its segments, or the prompts a
    multi-prompt family's one call can follow in turn, 32 at most; 0 for a model that reads no
    prompt) and the seconds each covers."""
    knobs, family = checked.knobs, checked.family
    if not (family.text_prompt or family.preview):  # it reads no prompt: nothing to write for it
        return 0, (knobs.num_frames - 1) / knobs.fps
    if family.multi_prompt:
        count = min(family.prompt_slots(knobs.num_frames), 32)
        return count, (checked.total_frames or knobs.num_frames) / knobs.fps / count
    return len(knobs.segments) or 1, (knobs.num_frames - 1) / knobs.fps


def _round_up(family, frames: int, maximum: int, notes: list[Message]) -> int:
    """The fewest frames the family's rule allows that are at least `frames` (at most `maximum`:
    then the most it allows), the change said in `notes`."""
    count = frames
    while family.round_frames(count, []) < frames and count < maximum:
        count += 1
    rounded = family.round_frames(count, [])
    while rounded > maximum and count > 1:  # past the family's limit: the most it allows below it
        count -= 1
        rounded = family.round_frames(count, [])
    if rounded != frames:
        notes.append(note("request.frames_rounded", value=frames, new=rounded, model=family.id, rule=family.frame_rule))
    return rounded


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _segments(request: GenerationRequest, model: str, num_frames: int, wanted: int | None, fps: int,
              notes: list[Message]) -> tuple[list[Segment], int | None]:  # fmt: skip
    """The segments a request makes, and the frames of the whole video when it is more than one call.
    Each segment after the first starts on the last frame of the one before, which it does not
    repeat: n segments of f frames make f + (n - 1)(f - 1) frames. A duration asks for as many
    segments as cover it (the last trimmed to it); with one prompt, every segment continues it."""
    given = _given_segments(request)
    if len(given) > 1 and num_frames < 2:
        raise InvalidInput("request.segment_too_short", num_frames=num_frames)
    if wanted is None:
        if len(given) <= 1:
            return given or [_the_segment(request)], None
        return given, chained_frames(num_frames, len(given))
    if wanted <= num_frames:  # one call covers the duration (trimmed to it when the rule made more)
        if len(given) > 1:
            raise InvalidInput("request.duration_segments", duration=request.duration, fps=fps, count=1,
                               num_frames=num_frames, given=len(given))  # fmt: skip
        return given or [_the_segment(request)], _trimmed(request, num_frames, wanted, notes)
    if num_frames < 2:
        raise InvalidInput("request.segment_too_short", num_frames=num_frames)
    count = 1 + -(-(wanted - num_frames) // (num_frames - 1))
    if given and len(given) != count:
        raise InvalidInput("request.duration_segments", duration=request.duration, fps=fps, count=count,
                           num_frames=num_frames, given=len(given))  # fmt: skip
    if count > 32:
        raise InvalidInput("request.too_many_segments", duration=request.duration, count=count, num_frames=num_frames,
                           fps=fps)  # fmt: skip
    notes.append(note("request.segments_for_duration", duration=request.duration, count=count, num_frames=num_frames,
                      total=wanted, model=model))  # fmt: skip
    return given or [Segment(prompt=request.prompt, seed=None) for _ in range(count)], wanted


def _the_segment(request: GenerationRequest) -> Segment:
    """A video of one prompt as its one segment."""
    return Segment(prompt=request.prompt, seed=request.seed)


def _trimmed(request: GenerationRequest, num_frames: int, wanted: int, notes: list[Message]) -> int | None:
    """The frames a one-call video is cut to when the family's frame rule made more than its duration
    needs (said in `notes`), or None."""
    if wanted >= num_frames:
        return None
    notes.append(note("request.trimmed", num_frames=num_frames, wanted=wanted, duration=request.duration))
    return wanted


def _given_segments(request: GenerationRequest) -> list[Segment]:
    """The request's segments, once its prompt (if any) is the first segment's."""
    given = list(request.segments)
    if given and request.prompt.strip() and request.prompt.strip() != given[0].prompt.strip():
        raise InvalidInput("request.prompt_and_segments", prompt=_short(request.prompt), first=_short(given[0].prompt))
    return given


def _one_call(request: GenerationRequest, family: Family, num_frames: int, wanted: int | None, fps: int,
              maximum: int, notes: list[Message]) -> tuple[list[Segment], int | None]:  # fmt: skip
    """The segments of a multi-prompt family, and the frames of the video when a duration trims the call:
    one call makes them all (its room spreads their prompts over the call), so a duration sets that
    call's frames and never adds a call. One seed applies: a later segment's own other seed is refused."""
    given = _given_segments(request)
    if wanted is not None and wanted > num_frames:
        raise InvalidInput("request.multi_prompt_one_call", duration=request.duration, fps=fps, wanted=wanted,
                           model=family.id, num_frames=num_frames, maximum=maximum)  # fmt: skip
    applies = given[0].seed if given and given[0].seed is not None else request.seed
    for number, segment in enumerate(given[1:], start=2):
        if segment.seed is not None and segment.seed != applies:
            raise InvalidInput("request.multi_prompt_seed", model=family.id, segment=number, seed=segment.seed)
    return given or [_the_segment(request)], _trimmed(request, num_frames, wanted or num_frames, notes)
