"""VideoEngine: check a request, load and keep a pipeline, generate, export.

`generate` reads like a diffusers pipeline: check inputs, load the model, fit the photo, run with
progress and cancel, export. One pipeline is kept loaded at a time; asking for another model frees
the first. The engine knows nothing about prompts or the web page: it takes a GenerationRequest
and returns a VideoResult.
"""

from __future__ import annotations

import inspect
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from PIL import Image

from messages import Message, note

from . import camera
from .errors import Cancelled, I2VError, InvalidInput, ModelNotAvailable, OutOfMemory
from .export import remove_orphaned_partials, unique_video_path, write_mp4
from .images import fit, open_photo
from .models import CAMERA, Family, ModelSource, camera_defaults, missing_weights, resolve
from .placement import free_memory, place, prepare_cuda, set_vae_tiling
from .request import MAX_SEED, GenerationRequest, Strategy, VideoResult

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class Progress:
    """One progress report: `step` of `total` done in `stage`, with seconds elapsed and left."""

    stage: Literal["loading", "denoising", "rendering", "encoding"]
    step: int
    total: int
    elapsed: float
    eta: float | None


class CancelFlag(Protocol):
    def is_set(self) -> bool: ...


@dataclass
class CheckedRequest:
    """A request with every default filled in and every rule applied."""

    request: GenerationRequest
    model: str
    source: ModelSource | None  # None for the camera engine
    height: int
    width: int
    num_frames: int
    fps: int
    num_inference_steps: int
    guidance_scale: float
    seed: int
    photo: Image.Image
    last_photo: Image.Image | None
    strategy: str = "none"
    vae_tiling: bool = False
    adjustments: list[Message] = field(default_factory=list)

    @property
    def family(self) -> Family | None:
        return self.source.family if self.source else None


class _StepWatch:
    """Counts denoising steps, reports progress, and stops the run when cancel is set."""

    def __init__(self, stage, total: int, on_progress, cancel: CancelFlag | None):
        self.stage, self.total, self.on_progress, self.cancel = stage, total, on_progress, cancel
        self.done = 0
        self.started = time.monotonic()

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("run.cancelled")

    def step(self, done: int | None = None) -> None:
        self.done = min(self.total, self.done + 1 if done is None else done)
        if self.on_progress is not None:
            elapsed = time.monotonic() - self.started
            eta = elapsed / self.done * (self.total - self.done) if self.done else None
            self.on_progress(Progress(self.stage, self.done, self.total, elapsed, eta))
        self.check_cancel()


class VideoEngine:
    """Makes videos from photos. Thread-safe: one generation runs at a time per engine."""

    def __init__(self, output_dir: str | Path, device: str | None = None, offload: Strategy = "none"):
        import torch

        self.output_dir = Path(output_dir)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.offload: Strategy = offload
        self._pipe = None
        self._pipe_source: ModelSource | None = None
        self._pipe_strategy: str | None = None
        self._lock = threading.Lock()
        remove_orphaned_partials(self.output_dir)  # a killed process's half-written files
        if self.device.startswith("cuda"):
            prepare_cuda()  # the allocator the planner's estimates were measured with

    # ------------------------------------------------------------------ checks
    def check_inputs(self, request: GenerationRequest) -> CheckedRequest:
        """Fill defaults and apply the model's rules. Rounding is reported; breaking a rule is an error."""
        model = request.model.strip()
        source = None if model == CAMERA else resolve(model)
        family = source.family if source else None
        rules = family or camera_defaults()
        adjustments: list[Message] = []
        name = family.id if family else CAMERA

        height = request.height or rules.height
        width = request.width or rules.width
        if family is not None and family.size_rule == "fixed":
            fixed_h, fixed_w = _fixed_size(source)
            if (height, width) != (fixed_h, fixed_w):
                if request.height is None and request.width is None:
                    height, width = fixed_h, fixed_w
                else:
                    raise InvalidInput("request.fixed_size", height=height, width=width, model=name,
                                       fixed_height=fixed_h, fixed_width=fixed_w)  # fmt: skip
        else:
            height, width = _round_size(height, width, rules.size_multiple, name, adjustments)
            if family is not None and family.size_rule == "bucket":
                bucket = _bucket_size(source, height, width)
                if bucket != (height, width):
                    adjustments.append(note("request.bucket", model=name, height=height, width=width,
                                            new_height=bucket[0], new_width=bucket[1]))  # fmt: skip
                    height, width = bucket

        max_frames = _max_frames(source) if family else rules.max_frames
        num_frames = request.num_frames or rules.num_frames
        if family is not None:
            num_frames = _round_frames(num_frames, family, adjustments)
        if num_frames > max_frames:
            raise InvalidInput("request.too_many_frames", num_frames=num_frames, model=name, maximum=max_frames)
        if family is not None and num_frames < family.min_frames:
            raise InvalidInput("request.too_few_frames", num_frames=num_frames, model=name, minimum=family.min_frames)

        if request.last_image is not None and not (family and family.end_frame):
            raise InvalidInput("request.no_end_frame", model=name)
        if family is not None and not family.text_prompt and request.prompt.strip():
            adjustments.append(note("request.no_text_prompt", model=name))
        vae_tiling = request.vae_tiling
        if family is not None and vae_tiling and not family.vae_tiling:
            adjustments.append(note("request.no_vae_tiling", model=name))
            vae_tiling = False

        seed = request.seed if request.seed is not None else secrets.randbelow(MAX_SEED + 1)
        photo, notes = open_photo(request.image)
        last_photo = None
        if request.last_image is not None:
            last_photo, last_notes = open_photo(request.last_image)
            notes += last_notes
        for said in adjustments + notes:
            log.info("%s", said)
        checked = CheckedRequest(
            request=request,
            model=source.name if source else CAMERA,
            source=source,
            height=height,
            width=width,
            num_frames=num_frames,
            fps=request.fps or rules.fps,
            num_inference_steps=request.num_inference_steps or (family.num_inference_steps if family else 0),
            guidance_scale=request.guidance_scale if request.guidance_scale is not None else (
                family.guidance_scale if family else 0.0
            ),
            seed=seed,
            photo=photo,
            last_photo=last_photo,
            strategy=request.memory_strategy,
            vae_tiling=vae_tiling,
            adjustments=adjustments + notes,
        )
        return self._choose_strategy(checked)

    def _choose_strategy(self, checked: CheckedRequest) -> CheckedRequest:
        """For memory_strategy "auto": on a GPU, the fastest strategy that the memory planner says
        fits this card (measured families only); else the engine's default."""
        if checked.strategy != "auto":
            return checked
        family = checked.family
        if family is None or not self.device.startswith("cuda"):
            return replace(checked, strategy=self.offload)
        import torch

        from .hardware import available_gb, host_ram_gb
        from .memory import fastest_fit, in_words

        total_gb, _ = available_gb(self.device)
        wanted = _run_shape(checked, self.offload)
        chosen = fastest_fit(wanted, total_gb, host_ram_gb())
        if chosen is None:
            return replace(checked, strategy=self.offload)
        chose = note("memory.auto", placement=in_words(chosen.shape.memory_strategy, chosen.shape.vae_tiling),
                     peak_gb=chosen.peak_gb,
                     available_gb=total_gb)  # fmt: skip
        log.info("%s", chose)
        return replace(checked, strategy=chosen.shape.memory_strategy, vae_tiling=chosen.shape.vae_tiling,
                       adjustments=[*checked.adjustments, chose])  # fmt: skip

    # ------------------------------------------------------------------ generation
    def generate(
        self,
        request: GenerationRequest,
        on_progress: Callable[[Progress], None] | None = None,
        cancel: CancelFlag | None = None,
        out_path: str | Path | None = None,
    ) -> VideoResult:
        """Make the video for `request`. Cancel stops at the next step and leaves no file behind."""
        with self._lock:
            started = time.monotonic()
            # 1. Check inputs
            checked = self.check_inputs(request)
            path = Path(out_path) if out_path else unique_video_path(self.output_dir, checked.model, checked.seed)

            # 2. Render the frames: the camera engine, or the family's diffusers pipeline; out of
            #    memory, step down one rung of the downgrade plan and try once more
            if checked.source is None:
                frames = self._render_camera(checked, on_progress, cancel)
            else:
                failure = None
                try:
                    frames = self._run_pipeline(checked, on_progress, cancel)
                except OutOfMemory as exc:
                    failure = exc.message
                if failure is not None:  # retried outside the except block: no traceback keeps tensors alive
                    checked, change = self._step_down(checked, failure)
                    failure = None
                    try:
                        frames = self._run_pipeline(checked, on_progress, cancel)
                    except OutOfMemory as exc:
                        failure = exc.message
                    if failure is not None:
                        self.unload()  # nothing stays behind for the next job
                        raise OutOfMemory("memory.oom_after_retry", failure=failure, change=change)
            if cancel is not None and cancel.is_set():
                raise Cancelled("run.cancelled")

            # 3. Export
            if on_progress is not None:
                on_progress(Progress("encoding", 0, 1, time.monotonic() - started, None))
            result = self._result(checked, path, time.monotonic() - started)
            write_mp4(frames, path, checked.fps, _metadata(result))
            log.info("wrote %s (%d frames, %dx%d, %.1fs)", path, len(frames), checked.width, checked.height, result.seconds)
            return result

    def _render_camera(self, checked: CheckedRequest, on_progress, cancel) -> np.ndarray:
        watch = _StepWatch("rendering", checked.num_frames, on_progress, cancel)
        watch.check_cancel()
        return camera.render(
            checked.photo,
            checked.request.camera_motion,
            checked.width,
            checked.height,
            checked.num_frames,
            checked.seed,
            checked.request.fit,
            on_frame=watch.step,
        )

    def _run_pipeline(self, checked: CheckedRequest, on_progress, cancel) -> np.ndarray:
        import torch

        family = checked.family
        if on_progress is not None:
            on_progress(Progress("loading", 0, 1, 0.0, None))
        pipe = self.load(checked.source, checked.strategy)
        set_vae_tiling(pipe, checked.vae_tiling)
        watch = _StepWatch("denoising", checked.num_inference_steps, on_progress, cancel)
        watch.check_cancel()
        kwargs = _pipeline_kwargs(pipe, family, checked)
        restore = _watch_steps(pipe, kwargs, watch)
        devices = [torch.device(self.device)] if self.device.startswith("cuda") else []
        out_of_memory = False
        try:
            # Some pipelines also draw from the global RNG (I2VGen-XL samples its image latents
            # without the generator): seed it too, and give it back as it was.
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(checked.seed)
                output = pipe(**kwargs)
        except torch.OutOfMemoryError:
            out_of_memory = True  # handled below: here the traceback still holds the run's tensors
        except Cancelled:
            self._release_pipeline_memory(pipe)
            raise
        finally:
            restore()
        if out_of_memory:
            del kwargs
            self._release_pipeline_memory(pipe)
            from .memory import in_words

            placement = in_words(checked.strategy, checked.vae_tiling)
            raise OutOfMemory("memory.oom", model=family.id, width=checked.width, height=checked.height,
                              num_frames=checked.num_frames, placement=placement)  # fmt: skip
        frames = np.asarray(output.frames[0])
        if frames.dtype != np.uint8:
            frames = np.clip(frames, 0.0, 1.0)
        return frames

    # ------------------------------------------------------------------ models
    def load(self, source: ModelSource, strategy: str | None = None):
        """The pipeline for `source` placed by `strategy`, loaded once and kept; another model or
        strategy frees this one first."""
        strategy = strategy or self.offload
        if self._pipe is not None and self._pipe_source == source and self._pipe_strategy == strategy:
            return self._pipe
        self.unload()
        import torch

        family = source.family
        dtype = getattr(torch, family.dtype) if self.device.startswith("cuda") else torch.float32
        log.info("loading %s from %s (%s on %s)", family.id, source.location, dtype, self.device)
        try:
            pipe = family.pipeline_class().from_pretrained(source.location, dtype=dtype)
        except OSError as exc:
            if source.local:
                raise ModelNotAvailable("model.folder_load_failed", folder=source.location, detail=str(exc)) from None
            raise missing_weights(source) from None
        pipe.set_progress_bar_config(disable=True)
        return self.adopt(pipe, source, strategy)

    def adopt(self, pipe, source: ModelSource, strategy: str):
        """Place a loaded pipeline by `strategy` and keep it as the current one. `load` uses this;
        so do benchmarks that build real-size pipelines with random weights in memory."""
        import torch

        placed = True
        try:
            place(pipe, strategy, self.device)
        except torch.OutOfMemoryError:
            placed = False  # freed below, outside the except block that holds the traceback
        if not placed:
            pipe.to("cpu")
            del pipe
            free_memory()
            raise OutOfMemory("memory.does_not_fit", model=source.family.id, strategy=strategy)
        self._pipe, self._pipe_source, self._pipe_strategy = pipe, source, strategy
        return pipe

    def _step_down(self, checked: CheckedRequest, failure: Message) -> tuple[CheckedRequest, Message]:
        """The request one rung down the downgrade plan (what changed is said in its adjustments),
        and the change in words."""
        from .memory import rungs

        now = _run_shape(checked, checked.strategy)
        ladder = rungs(now, with_estimates=False)
        if not ladder:
            self.unload()
            raise OutOfMemory(failure.code, **failure.params)
        rung = ladder[0]
        after = rung.shape
        log.warning("%s; retrying once with %s", failure, rung.change)
        return replace(
            checked,
            height=after.height, width=after.width, num_frames=after.num_frames, strategy=after.memory_strategy,
            vae_tiling=after.vae_tiling,
            adjustments=[*checked.adjustments, note("memory.oom_retried", change=rung.change)],
        ), rung.change  # fmt: skip

    def unload(self) -> None:
        """Free the loaded pipeline and its memory."""
        if self._pipe is None:
            return
        log.info("unloading %s", self._pipe_source.name)
        self._pipe.remove_all_hooks()
        # No reference may outlive this line: a bound method kept in a local (as it once was) held
        # the whole pipeline, and its 94 GB of pinned memory, past the free below.
        self._pipe = self._pipe_source = self._pipe_strategy = None
        free_memory(host=True)  # offloaded weights' pinned host memory too

    def _release_pipeline_memory(self, pipe) -> None:
        # After an exception mid-run, offload hooks may leave weights on the GPU; put them back.
        maybe_free = getattr(pipe, "maybe_free_model_hooks", None)
        if maybe_free is not None:
            maybe_free()
        free_memory()

    # ------------------------------------------------------------------ results
    def _result(self, checked: CheckedRequest, path: Path, seconds: float) -> VideoResult:
        family = checked.family
        request = checked.request
        return VideoResult(
            path=path,
            metadata_path=path.with_suffix(".json"),
            model=checked.model,
            family=family.id if family else CAMERA,
            engine="diffusers" if family else "camera",
            label=family.label if family else camera_defaults().label,
            preview=family is None,
            prompt=request.prompt if (family is None or family.text_prompt) else "",
            negative_prompt=request.negative_prompt if (family and family.text_prompt) else "",
            height=checked.height,
            width=checked.width,
            num_frames=checked.num_frames,
            fps=checked.fps,
            num_inference_steps=checked.num_inference_steps,
            guidance_scale=checked.guidance_scale,
            seed=checked.seed,
            camera_motion=request.camera_motion,
            fit=request.fit,
            seconds=round(seconds, 3),
            device=self.device if family else "cpu",
            memory_strategy=checked.strategy if family else "none",
            vae_tiling=checked.vae_tiling,
            adjustments=checked.adjustments,
        )


# ---------------------------------------------------------------------- rules
def _run_shape(checked: CheckedRequest, strategy: str):
    """What the memory planner needs to know of a checked request, with `strategy`."""
    from .memory import RunShape

    return RunShape(checked.family.id, checked.height, checked.width, checked.num_frames,
                    checked.num_inference_steps, strategy, checked.vae_tiling)  # fmt: skip


def _round_size(height: int, width: int, multiple: int, name: str, adjustments: list[Message]) -> tuple[int, int]:
    rounded = []
    for label, value in (("height", height), ("width", width)):
        new = max(multiple, value // multiple * multiple)
        if new != value:
            adjustments.append(note("request.size_rounded", knob=label, value=value, new=new, model=name,
                                    multiple=multiple))  # fmt: skip
        rounded.append(new)
    return rounded[0], rounded[1]


def _round_frames(num_frames: int, family: Family, adjustments: list[Message]) -> int:
    step, offset = family.frame_step, family.frame_offset
    n = max(1, round((num_frames - offset) / step))
    new = n * step + offset
    if new != num_frames:
        adjustments.append(note("request.frames_rounded", value=num_frames, new=new, model=family.id,
                                rule=family.frame_rule))  # fmt: skip
    return new


def _component_config(source: ModelSource, component: str) -> dict | None:
    """A component's config.json, from the local folder or the Hugging Face cache, without loading weights."""
    if source.local:
        path = Path(source.location) / component / "config.json"
    else:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(source.location, f"{component}/config.json")
        path = Path(found) if isinstance(found, str) else None
    if path is None or not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _fixed_size(source: ModelSource) -> tuple[int, int]:
    config = _component_config(source, "transformer")
    if config and config.get("use_learned_positional_embeddings"):
        scale = 8  # CogVideoX's VAE compresses 8x in space
        return config["sample_height"] * scale, config["sample_width"] * scale
    return tuple(source.family.fixed_size)


def _max_frames(source: ModelSource) -> int:
    config = _component_config(source, "transformer")
    if source.family.size_rule == "fixed" and config and config.get("use_learned_positional_embeddings"):
        return config.get("sample_frames", source.family.max_frames)
    return source.family.max_frames


def _bucket_size(source: ModelSource, height: int, width: int) -> tuple[int, int]:
    """HunyuanVideo 1.5 resizes to the bucket nearest the photo's aspect ratio; ask it which one."""
    from diffusers.pipelines.hunyuan_video1_5.image_processor import generate_crop_size_list, get_closest_ratio

    target = (_component_config(source, "transformer") or {}).get("target_size", source.family.height)
    vae_scale = (_component_config(source, "vae") or {}).get("spatial_compression_ratio", source.family.size_multiple)
    buckets = generate_crop_size_list(base_size=target, patch_size=vae_scale)
    ratios = np.array([round(float(h) / float(w), 5) for h, w in buckets])
    bucket_h, bucket_w = get_closest_ratio(height, width, ratios, buckets)[0]
    return int(bucket_h), int(bucket_w)


# ---------------------------------------------------------------------- pipelines
def _pipeline_kwargs(pipe, family: Family, checked: CheckedRequest) -> dict[str, Any]:
    """The keyword arguments of one pipeline call, in diffusers' names."""
    import torch

    request = checked.request
    photo = fit(checked.photo, checked.width, checked.height, request.fit)
    params = inspect.signature(pipe.__call__).parameters
    kwargs: dict[str, Any] = {
        "image": photo,
        "num_frames": checked.num_frames,
        "num_inference_steps": checked.num_inference_steps,
        "generator": torch.Generator("cpu").manual_seed(checked.seed),
        "output_type": "np",
    }
    if "height" in params:
        kwargs.update(height=checked.height, width=checked.width)
    if family.text_prompt:
        kwargs.update(prompt=request.prompt, negative_prompt=request.negative_prompt or None)
    if checked.last_photo is not None:
        kwargs["last_image"] = fit(checked.last_photo, checked.width, checked.height, request.fit)

    guidance = checked.guidance_scale
    if family.pipeline == "StableVideoDiffusionPipeline":
        kwargs.update(max_guidance_scale=guidance, min_guidance_scale=min(1.0, guidance), fps=checked.fps)
        kwargs["decode_chunk_size"] = 8
    elif family.pipeline == "HunyuanVideo15ImageToVideoPipeline":
        pipe.guider.guidance_scale = guidance  # this pipeline takes guidance through its guider
    else:
        kwargs["guidance_scale"] = guidance
    if "guidance_scale_2" in params and getattr(pipe, "transformer_2", None) is not None:
        kwargs["guidance_scale_2"] = guidance
    if "frame_rate" in params:
        kwargs["frame_rate"] = checked.fps
    if "target_fps" in params:
        kwargs["target_fps"] = checked.fps
    if "clip_skip" in params:
        kwargs["clip_skip"] = None  # I2VGen-XL's default (1) breaks under transformers 5
    return kwargs


def _watch_steps(pipe, kwargs: dict, watch: _StepWatch) -> Callable[[], None]:
    """Report each denoising step to `watch`: through `callback_on_step_end` where the pipeline has
    it, else by wrapping its scheduler's `step` (HunyuanVideo 1.5 and I2VGen-XL have no callback).
    Raising Cancelled there stops the run before the VAE decodes anything. Returns an undo."""
    if "callback_on_step_end" in inspect.signature(pipe.__call__).parameters:

        def on_step_end(pipeline, index, timestep, callback_kwargs):
            watch.step(index + 1)
            return {}

        kwargs["callback_on_step_end"] = on_step_end
        return lambda: None

    scheduler = pipe.scheduler
    original = scheduler.step

    def step(*args, **step_kwargs):
        out = original(*args, **step_kwargs)
        watch.step()
        return out

    scheduler.step = step
    return lambda: scheduler.__dict__.pop("step", None)


def _metadata(result: VideoResult) -> dict:
    data = result.model_dump(mode="json", exclude={"path", "metadata_path"})
    data["file"] = result.path.name
    if result.engine == "diffusers":
        import diffusers

        data["diffusers"] = diffusers.__version__
    return data


__all__ = ["CheckedRequest", "I2VError", "Progress", "VideoEngine"]
