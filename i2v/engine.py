"""VideoEngine: check a request, place and keep a pipeline, render the frames, export the video.

`generate` reads like a diffusers pipeline's `__call__`: check inputs, choose where the weights
live, render, export. Rendering is public on its own (`render`: a checked request in, frames out),
so a long video can chain renders before one export. One pipeline is kept loaded at a time; asking
for another model frees the first, pinned host memory included. The engine knows nothing about
prompts or the web page and never reads the environment: it takes a GenerationRequest and returns a
VideoResult. What differs between model families lives in their rooms (i2v/families/).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from pathlib import Path

import numpy as np

from messages import Message, note

from .audio import Audio, lay_under
from .checks import CheckedRequest, check
from .errors import Cancelled, InvalidInput, ModelNotAvailable, OutOfMemory
from .export import remove_orphaned_partials, unique_video_path, write_mp4
from .families import ModelSource, missing_weights
from .images import fit
from .parallel import Split, current_group, joined, own, parallelize, split_for
from .placement import free_memory, place, prepare_cuda, set_vae_tiling
from .progress import CancelFlag, OnProgress, Progress, StepWatch, report
from .request import GenerationRequest, Strategy, VideoResult

log = logging.getLogger(__name__)
# torch.compile (dynamo) is not thread-safe: engines of one process (a pool's workers, a GPU each)
# compile their first run one at a time; compiled runs after it go side by side.
_COMPILING = threading.Lock()


class VideoEngine:
    """Makes videos from photos. Thread-safe: one generation runs at a time per engine."""

    def __init__(self, output_dir: str | Path, device: str | None = None, offload: Strategy = "none",
                 lora_dir: str | Path | None = None, cache_dir: str | Path | None = None,
                 runs_once: bool = False, upscaler_dir: str | Path | None = None,
                 interpolator_dir: str | Path | None = None):  # fmt: skip
        """`lora_dir`: the folder LoRAs (and turbo's LoRA files) are looked up in; `upscaler_dir`: the
        folder of image-upscaler weights (ESRGAN family, through spandrel); `interpolator_dir`: the
        folder of RIFE weights (v4.6), without which frames are interpolated by optical flow; `cache_dir`: where
        compiled kernels are kept between starts (never the output folder, which the page serves);
        `runs_once`: a single run (the command line), for which `speed` fast does not compile."""
        import torch

        self.output_dir = Path(output_dir)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.offload: Strategy = offload  # the strategy when "auto" cannot decide (on a CPU, say)
        self.lora_dir = Path(lora_dir) if lora_dir else None
        self.upscaler_dir = Path(upscaler_dir) if upscaler_dir else None
        self.interpolator_dir = Path(interpolator_dir) if interpolator_dir else None
        self.cache_dir = Path(cache_dir) if cache_dir else None  # None: torch's own (/tmp/torchinductor_USER)
        self.runs_once = runs_once
        self.ram_gb: float | None = None  # host RAM this engine may plan with (a pool's share); None: all of it
        self._pipe = None
        self._pipe_key: tuple | None = None  # (source, strategy, load-time levers) of the loaded pipeline
        self._pipe_source: ModelSource | None = None
        self._upsampler = None  # the loaded pipeline's latent upsampler (LTX), when a run used one
        self._upsampler_folder: Path | None = None
        self._warm = False  # the loaded pipeline has run once (a compiled one is warmed up)
        self._lock = threading.Lock()
        remove_orphaned_partials(self.output_dir)  # a killed process's half-written files
        if self.device.startswith("cuda"):
            prepare_cuda()  # the allocator the planner's estimates were measured with

    # ------------------------------------------------------------------ the steps
    def generate(
        self,
        request: GenerationRequest,
        on_progress: OnProgress | None = None,
        cancel: CancelFlag | None = None,
        out_path: str | Path | None = None,
    ) -> VideoResult | None:
        """Make the video for `request`. Cancel stops at the next step and leaves no file behind
        (a long video asked to keep its finished segments keeps those). In one of the processes of a
        video across several GPUs (`gpus` > 1, started by i2v.parallel.launch) every rank renders and
        rank 0 alone finishes and writes the video: the other ranks return None."""
        with self._lock:
            started = time.monotonic()
            # 1. Check inputs (gpus > 1: this process must be one rank of a group that many)
            checked, group = joined(check(request))
            # 2. Choose where the weights live (memory_strategy auto: the planner, for this GPU),
            #    then which speed levers can work here, and whether upscale 2 is made in latent space
            checked = self.choose_upscaler(self.choose_levers(self.choose_strategy(checked)))
            # 3. Render each segment, from the last frame of the one before; out of GPU memory, one
            #    rung down the downgrade plan, once
            frames, checked = self.render_segments(checked, on_progress, cancel)
            if group is not None:  # across GPUs: the other ranks are done, rank 0 finishes on its own
                if not group.leads:
                    return None
                cancel = own(cancel)
            # 4. Interpolate and upscale
            frames, checked, post = self.finish(frames, checked, on_progress, cancel)
            # 5. Export
            report(on_progress, "encoding", time.monotonic() - started)
            return self.export(frames, checked, time.monotonic() - started, out_path, **post)

    def render_segments(self, checked: CheckedRequest, on_progress: OnProgress | None = None,
                        cancel: CancelFlag | None = None) -> tuple[np.ndarray, CheckedRequest]:  # fmt: skip
        """The frames of every segment, joined (i2v/chain.py): segment k+1 renders from segment k's
        last frame, held to the first segment's colour, without repeating the join. Only the last
        segment ends on the end photo. A multi-prompt family makes every segment in one call (its
        room schedules their prompts): nothing is chained. Returns the video's uint8 frames and the
        request as it ran."""
        from dataclasses import replace

        from PIL import Image

        from .chain import Colour, as_uint8, hold_colour, join

        segments = [None] if checked.family.multi_prompt else checked.knobs.segments or [None]
        count = len(segments)
        whole = dict(prompt=checked.knobs.prompt, seed=checked.knobs.seed, segments=checked.knobs.segments)
        first_photo, last_photo = checked.photo, checked.last_photo
        end_photo = first_photo if checked.knobs.loop else last_photo
        parts: list[np.ndarray] = []
        reference: Colour | None = None
        photo = first_photo
        per_segment = checked.knobs.num_frames
        for index, segment in enumerate(segments):
            part = checked if segment is None else checked.with_(prompt=segment.prompt, seed=segment.seed)
            part = replace(part, photo=photo, last_photo=end_photo if index == count - 1 else None)
            if index == count - 1 and checked.last_segment_frames is not None:  # only what the duration still needs
                part = part.with_(num_frames=min(checked.last_segment_frames, part.knobs.num_frames))
            try:
                frames, ran = self._render_with_retry(part, _segment_progress(on_progress, index + 1, count), cancel,
                                                      continuing=index > 0)  # fmt: skip
                if cancel is not None and cancel.is_set():  # stopped during the decode: nothing is kept of it
                    raise Cancelled("run.cancelled")
            except Cancelled:
                if not (checked.knobs.keep_segments and parts):
                    raise
                said = note("chain.stopped_kept", done=len(parts), segments=count)
                log.info("%s", said)
                checked = replace(checked.with_(said), stopped_kept=True)
                break
            # The request as it ran (a retry may have stepped it down), still the whole video's
            if index < count - 1 or checked.last_segment_frames is None:
                per_segment = ran.knobs.num_frames
            checked = replace(ran.with_(**whole, num_frames=per_segment), photo=first_photo, last_photo=last_photo)
            frames = as_uint8(frames)
            if index == 0:  # only later segments are held to it: a one-segment video makes no float copy of itself
                reference = Colour.of(frames) if count > 1 else None
            else:
                frames = self._same_size(frames, parts[0], index + 1)
            ends_on_photo = index == count - 1 and end_photo is not None  # its colour is that photo's
            if index > 0 and not ends_on_photo:
                frames, shift = hold_colour(frames, reference)
                if shift:  # None: a change of scene, left alone; 0.0: nothing moved a level
                    said = note("chain.colour_held", segment=index + 1, shift=shift)
                    log.info("%s", said)
                    checked = checked.with_(said)
            parts.append(frames)
            photo = Image.fromarray(frames[-1])
        video = join(parts)
        if checked.total_frames is not None and len(parts) == count:
            video = video[: checked.total_frames]
            if len(video) < checked.total_frames:  # a retry made fewer frames: said, not hidden
                said = note("chain.short_of_duration", frames=len(video), wanted=checked.total_frames)
                log.warning("%s", said)
                checked = checked.with_(said)
        if len(parts) < count and checked.knobs.segments:  # stopped: the result lists the segments it has
            checked = checked.with_(segments=checked.knobs.segments[: len(parts)])
        return video, checked

    @staticmethod
    def _same_size(frames: np.ndarray, like: np.ndarray, segment: int) -> np.ndarray:
        """A segment made smaller after running out of memory, scaled to the video's size."""
        if frames.shape[1:] == like.shape[1:]:
            return frames
        from PIL import Image

        height, width = like.shape[1:3]
        log.warning("%s", note("chain.resized", segment=segment, width=frames.shape[2], height=frames.shape[1],
                               to_width=width, to_height=height))  # fmt: skip
        return np.stack([np.asarray(Image.fromarray(f).resize((width, height), Image.Resampling.LANCZOS))
                         for f in frames])  # fmt: skip

    def finish(self, frames: np.ndarray, checked: CheckedRequest, on_progress: OnProgress | None = None,
               cancel: CancelFlag | None = None) -> tuple[np.ndarray, CheckedRequest, dict]:  # fmt: skip
        """Grade, interpolate, retime and upscale the rendered frames as the request asks. Returns the
        frames, the request with what was done said (its `fps` now the file's), and the result's fields
        for it (interpolation, upscaler). Stopped: a long video keeping its finished segments is written
        as made, at the model's fps; otherwise nothing is."""
        from dataclasses import replace

        knobs, post = checked.knobs, {}
        started = time.monotonic()
        in_latents = checked.latent_upscale  # already twice the size: LTX's latent upsampler made it in the render
        if in_latents:
            post["upscaler"] = LATENT_UPSAMPLER
        factor, file_fps = _fps_plan(checked)
        grading = knobs.color_palette is not None and not checked.family.text_prompt  # a palette without words
        post_work = (factor > 1 or file_fps != knobs.fps or grading or (knobs.upscale > 1 and not in_latents))

        def as_made():  # a stopped long video keeping what it made: written as it is, at once
            return frames, replace(checked.with_(note("post.skipped_stopped")), stopped_kept=True), post

        if cancel is not None and cancel.is_set():
            if not (checked.stopped_kept or knobs.keep_segments):  # stopped after the last step: nothing is written
                raise Cancelled("run.cancelled")
            if post_work:
                return as_made()
        if post_work and knobs.keep_segments:  # Stop during the work after: the segments, made, are kept
            try:
                return self._post(frames, checked, post, in_latents, on_progress, cancel, started)
            except Cancelled:
                log.info("stopped during interpolation or upscaling: the finished video is kept as made")
                return as_made()
        return self._post(frames, checked, post, in_latents, on_progress, cancel, started)

    def _post(self, frames: np.ndarray, checked: CheckedRequest, post: dict, in_latents: bool,
              on_progress: OnProgress | None, cancel: CancelFlag | None, started: float):  # fmt: skip
        """`finish`'s work: a palette's colour grade (a model that reads no prompt), interpolation and
        retiming to the file's fps, then upscaling (not in place: a Stop leaves `post` as it was)."""
        knobs, post = checked.knobs, dict(post)
        factor, file_fps = _fps_plan(checked)
        if knobs.color_palette is not None and not checked.family.text_prompt:
            from .grade import grade

            frames = grade(frames, knobs.color_palette)
            checked = checked.with_(note("style.graded", palette=knobs.color_palette, model=checked.family.id))
        if len(frames) > 1 and (factor > 1 or file_fps != knobs.fps):
            from .interpolate import interpolate_with, pairs_for, retime

            before, made_fps, method = len(frames), knobs.fps, None
            if factor > 1:
                watch = StepWatch("interpolating", pairs_for(before, factor), on_progress, cancel)
                frames, used = interpolate_with(frames, factor, self.interpolator_dir, device=self.device,
                                                on_frame=watch.step)  # fmt: skip
                post["interpolation"] = used
                method = note("post.method_rife") if used == "rife" else note("post.method_flow")
            frames = retime(frames, made_fps * factor, file_fps)  # the same frames when interpolation reached it
            if file_fps == made_fps * factor:  # interpolation alone, as `interpolate` asks
                said = note("post.interpolated", factor=factor, method=method, before=before, after=len(frames),
                            fps=file_fps)  # fmt: skip
            elif method is not None:
                said = note("fps.retimed", before=before, model_fps=made_fps, factor=factor, method=method, fps=file_fps,
                            after=len(frames), seconds=(len(frames) - 1) / file_fps)  # fmt: skip
            else:
                said = note("fps.dropped", before=before, model_fps=made_fps, fps=file_fps, after=len(frames),
                            seconds=(len(frames) - 1) / file_fps)  # fmt: skip
            checked = checked.with_(said, fps=file_fps)
        if knobs.upscale > 1 and in_latents:
            checked = checked.with_(note("post.upscaled", factor=knobs.upscale, upscaler=LATENT_UPSAMPLER,
                                         width=frames.shape[2], height=frames.shape[1]))  # fmt: skip
        elif knobs.upscale > 1:
            from .upscale import find_upscaler, upscale

            model_file = find_upscaler(self.upscaler_dir, knobs.upscale)
            watch = StepWatch("upscaling", len(frames), on_progress, cancel)
            frames, used = upscale(frames, knobs.upscale, model_file, device=self.device, on_frame=watch.step)
            post["upscaler"] = used
            said = [note("post.upscaled", factor=knobs.upscale, upscaler=used, width=frames.shape[2],
                         height=frames.shape[1])]  # fmt: skip
            if model_file is None:
                said.append(note("post.lanczos_only"))
            checked = checked.with_(*said)
        if post:
            log.info("post-processing took %.1fs", time.monotonic() - started)
        return frames, checked, post

    def choose_strategy(self, checked: CheckedRequest) -> CheckedRequest:
        """For memory_strategy "auto": on a GPU, the fastest strategy that the memory planner says fits
        this card (measured families only); else the engine's default. Other strategies stay."""
        if checked.knobs.memory_strategy != "auto":
            return checked
        if not checked.family.pipeline or not self.device.startswith("cuda"):
            return checked.with_(memory_strategy=self.offload)
        from .hardware import available_gb, host_ram_gb
        from .memory import RunShape, fastest_fit, in_words

        from .speed import fp8_here

        total_gb = available_gb(self.device)
        shape = RunShape.of(checked.family.id, checked.knobs, memory_strategy=self.offload)
        if shape.quantize == "fp8" and not fp8_here(self.device):  # plan with the weights it will really have
            shape = shape.with_(quantize="none")
        chosen = fastest_fit(shape, total_gb, self.ram_gb or host_ram_gb())
        if chosen is None:
            return checked.with_(memory_strategy=self.offload)
        way = chosen.shape
        said = note("memory.auto", placement=in_words(way.memory_strategy, way.vae_tiling), peak_gb=chosen.peak_gb,
                    available_gb=total_gb)  # fmt: skip
        log.info("%s", said)
        return checked.with_(said, memory_strategy=way.memory_strategy, vae_tiling=way.vae_tiling)

    def choose_upscaler(self, checked: CheckedRequest) -> CheckedRequest:
        """Whether upscale 2 is made in latent space, inside the render: for a family with a latent
        upsampler (`latent_upscaler`, LTX-Video 0.9.5 and later) whose weights are in the upscaler
        folder or the Hugging Face cache: `latent_upscale` says so to `render` and `finish`. Otherwise
        (x4, or no weights) upscaling stays post-processing. Either way the adjustments say why."""
        from dataclasses import replace

        family, factor = checked.family, checked.knobs.upscale
        if family.latent_upscaler is None or factor == 1:
            return checked
        latent_channels = (checked.source.component_config("vae") or {}).get("latent_channels")
        if factor != 2:
            said = note("post.latent_x2_only", model=family.id, factor=factor)
        elif family.latent_upsampler_folder(self.upscaler_dir, latent_channels) is None:
            said = note("post.latent_missing", model=family.id, repo=family.latent_upscaler)
        else:
            said = note("post.latent_upscaling", model=family.id, steps=family.latent_upscale_steps())
        log.info("%s", said)
        return replace(checked.with_(said), latent_upscale=said.code == "post.latent_upscaling")

    def choose_levers(self, checked: CheckedRequest) -> CheckedRequest:
        """The speed levers this run asked for that work on this device and placement: the knobs hold
        the ones used, `levers` says of each asked one whether it was applied, and why."""
        from dataclasses import replace

        from .speed import decide

        used, reports = decide(checked.knobs, checked.family, self.device, self.runs_once, checked.explicit)
        for report_ in reports:
            log.info("lever %s=%s: %s%s", report_.lever, report_.value, "applied" if report_.applied else "not applied",
                     f" ({report_.reason})" if report_.reason else "")  # fmt: skip
        return replace(checked.with_(**used), levers=tuple(reports))

    def render(self, checked: CheckedRequest, on_progress: OnProgress | None = None,
               cancel: CancelFlag | None = None, continuing: bool = False,
               sound: list[Audio] | None = None) -> np.ndarray:  # fmt: skip
        """The frames of one call for a checked request, (T, H, W, 3), uint8 or floats in [0, 1]
        (twice the height and width when the request's upscale 2 is made in latent space).
        `continuing`: the photo is the last frame of the segment before. Cancel raises Cancelled at
        the next step; out of GPU memory raises OutOfMemory (the pipeline is kept). `sound`, a list,
        receives the sound a family that makes its own (`audio`) made with the frames."""
        family, knobs = checked.family, checked.knobs
        if not family.pipeline:  # the camera engine: the family renders itself
            watch = StepWatch("rendering", knobs.num_frames, on_progress, cancel)
            watch.check_cancel()
            return family.render(knobs, checked.photo, on_frame=watch.step, continuing=continuing)
        frames, made = self._run_pipeline(checked, on_progress, cancel)
        if sound is not None and made is not None:
            sound.append(made)
        return frames

    def export(self, frames: np.ndarray, checked: CheckedRequest, seconds: float,
               out_path: str | Path | None = None, **post) -> VideoResult:  # fmt: skip
        """Write `frames` as the MP4 of `checked` (at `out_path`, or a new unique name in the output
        folder) with its JSON beside it, and say how it was made: the file's frames, fps and size,
        each segment's prompt and seed, and `post` (interpolation, upscaler) as `finish` gave it.
        `checked.audio`, the soundtrack or the model's own sound, becomes its AAC track, as long as the
        file's frames last (a soundtrack trimmed or looped, said; the model's trimmed or padded to the frame)."""
        knobs, family = checked.knobs, checked.family
        path = Path(out_path) if out_path else unique_video_path(self.output_dir, knobs.model, knobs.seed)
        file = dict(num_frames=len(frames), height=frames.shape[1], width=frames.shape[2],
                    fps=knobs.fps,  # the file's: `finish` retimed it (a video kept as made: the model's)
                    segment_frames=knobs.num_frames)  # fmt: skip
        audio, said = None, []
        if checked.audio is not None:
            soundtrack = knobs.soundtrack.name if knobs.soundtrack else None
            audio, said = lay_under(checked.audio, len(frames) / file["fps"], soundtrack)
        result = VideoResult(
            **{**knobs.model_dump(), **file}, **post, path=path, metadata_path=path.with_suffix(".json"), family=family.id,
            engine=family.engine, label=family.label, preview=family.preview, seconds=round(seconds, 3),
            device=self.device if family.pipeline else "cpu", adjustments=[*checked.adjustments, *said],
            levers=list(checked.levers), has_audio=audio is not None,
            audio=None if audio is None else "soundtrack" if knobs.soundtrack else "generated",
        )  # fmt: skip
        sound = {"audio": audio} if audio is not None else {}  # silent: the call benches stub (four arguments)
        write_mp4(frames, path, result.fps, _metadata(result), **sound)
        log.info("wrote %s (%d frames, %dx%d, %.1fs)", path, len(frames), result.width, result.height, result.seconds)
        return result

    def _render_with_retry(self, checked: CheckedRequest, on_progress, cancel,
                           continuing: bool = False) -> tuple[np.ndarray, CheckedRequest]:  # fmt: skip
        """`render`, and once more one rung down the downgrade plan when the GPU ran out of memory.
        The retry happens outside the except block: no traceback keeps the first run's tensors alive.
        Returns the frames and the request as it ran, holding the sound the family made with them
        (`audio`; a family without sound keeps the request's, a soundtrack or None)."""
        from dataclasses import replace

        made: list[Audio] = []

        def as_ran(frames, checked):
            return frames, replace(checked, audio=made[-1]) if made else checked

        failure: Message | None = None
        try:
            return as_ran(self.render(checked, on_progress, cancel, continuing, sound=made), checked)
        except OutOfMemory as exc:
            if current_group() is not None:  # a rank that retried alone would wait for the others forever
                raise
            failure = exc.message
        checked, change = self._step_down(checked, failure)
        checked = self._levers_after_step_down(checked)
        try:
            return as_ran(self.render(checked, on_progress, cancel, continuing, sound=made), checked)
        except OutOfMemory as exc:
            failure = exc.message
        self.unload()  # nothing stays behind for the next job
        raise OutOfMemory("memory.oom_after_retry", failure=failure, change=change)

    def _levers_after_step_down(self, checked: CheckedRequest) -> CheckedRequest:
        """After a step down to another memory strategy, the levers that no longer apply with it
        (fp8 and compile with offload) are dropped, and their reports say why."""
        from dataclasses import replace

        from .speed import decide

        used, reports = decide(checked.knobs, checked.family, self.device, False,
                               frozenset({"quantize", "compile", "step_cache"}))  # fmt: skip
        again = {report_.lever: report_ for report_ in reports}
        levers = tuple(again.pop(old.lever, old) for old in checked.levers)
        return replace(checked.with_(**used), levers=levers)

    def _step_down(self, checked: CheckedRequest, failure: Message) -> tuple[CheckedRequest, Message]:
        """The request one rung down the downgrade plan (what changed is said in its adjustments),
        and the change in words. A rung whose calls would be too short for the request's references
        (the check step's rule: each call takes them all, a duration's last the shortest) is passed
        over; with none left, the first run's OutOfMemory stands."""
        from .memory import RunShape, rungs

        def holds_references(frames: int) -> bool:
            if not checked.reference_photos:
                return True
            try:
                checked.family.check_references(min(frames, checked.last_segment_frames or frames),
                                                len(checked.reference_photos))  # fmt: skip
            except InvalidInput:
                return False
            return True

        ladder = rungs(RunShape.of(checked.family.id, checked.knobs), with_estimates=False)
        rung = next((rung for rung in ladder if holds_references(rung.shape.num_frames)), None)
        if rung is None:
            self.unload()
            raise OutOfMemory(failure.code, **failure.params)
        log.warning("%s; retrying once with %s", failure, rung.change)
        after = rung.shape
        return checked.with_(note("memory.oom_retried", change=rung.change), height=after.height, width=after.width,
                             num_frames=after.num_frames, memory_strategy=after.memory_strategy,
                             vae_tiling=after.vae_tiling), rung.change  # fmt: skip

    def _run_pipeline(self, checked: CheckedRequest, on_progress, cancel) -> tuple[np.ndarray, Audio | None]:
        import torch

        from . import lora
        from .speed import set_step_cache

        family, knobs = checked.family, checked.knobs
        # LoRA files first: a missing one is said before minutes of loading
        lora_files = [lora.locate(choice, self.lora_dir) for choice in knobs.loras]
        report(on_progress, "loading")
        pipe = self.load(checked.source, knobs.memory_strategy, quantize=knobs.quantize, compile=knobs.compile,
                         turbo=knobs.speed == "turbo", split=split_for(checked))  # fmt: skip
        upsampler = self.load_latent_upsampler(checked.source, pipe) if checked.latent_upscale else None
        set_vae_tiling(pipe, knobs.vae_tiling)
        try:
            if (knobs.loras or lora.loaded(pipe)) and lora.apply(pipe, family.id, knobs.loras, lora_files):
                self._warm = False  # other adapters or weights: compiled blocks compile again
        except InvalidInput:
            self._warm = False  # a refused load still wrapped layers: the next compiled run compiles again
            raise
        unavailable = set_step_cache(pipe, knobs.step_cache)
        if unavailable:
            log.warning("step cache %s could not be used with %s: this run goes without", knobs.step_cache, family.id)
        if knobs.compile and not self._warm:
            report(on_progress, "compiling")
        steps = knobs.num_inference_steps + (family.latent_upscale_steps() if upsampler is not None else 0)
        watch = StepWatch("denoising", steps, on_progress, cancel)  # a second pass's steps count on after the first's
        watch.check_cancel()

        def call(scale: int = 1) -> dict:
            """The pipeline call's arguments at `scale` times the video's size, every photo fitted to it
            (references scaled to fit inside it, uncropped; passed only to families that take them)."""
            sized = knobs.model_copy(update=dict(height=knobs.height * scale, width=knobs.width * scale))

            def fitted(photo):
                return fit(photo, sized.width, sized.height, sized.fit)

            last = fitted(checked.last_photo) if checked.last_photo else None
            keyframes = [(frame, fitted(photo)) for frame, photo in checked.keyframe_photos]
            extra = {}
            if family.references:
                from .references import fit_reference

                extra["references"] = [fit_reference(image, sized.width, sized.height)
                                       for _, image in checked.reference_photos]  # fmt: skip
            return family.call_kwargs(pipe, sized, fitted(checked.photo), last, keyframes, **extra)

        kwargs = call()
        restore = family.watch_steps(pipe, kwargs, watch)
        devices = [torch.device(self.device)] if self.device.startswith("cuda") else []
        out_of_memory = False
        compiling = _COMPILING if knobs.compile and not self._warm else contextlib.nullcontext()
        try:
            # Some pipelines also draw from the global RNG (I2VGen-XL samples its image latents
            # without the generator): seed it too, and give it back as it was.
            with compiling, torch.random.fork_rng(devices=devices):
                torch.manual_seed(knobs.seed)
                if upsampler is None:
                    output = pipe(**kwargs)
                else:  # upscale 2 in latent space: the room's passes, the second at twice the size
                    output = family.render_latent_upscaled(pipe, upsampler, kwargs, call(2), watch)
        except torch.OutOfMemoryError:
            out_of_memory = True  # handled below: here the traceback still holds the run's tensors
        except Cancelled:
            self._release_pipeline_memory(pipe)
            raise
        finally:
            restore()
            set_step_cache(pipe, "none")  # its state belongs to this run
        self._warm = True
        if out_of_memory:
            del kwargs
            self._release_pipeline_memory(pipe)
            from .memory import in_words

            raise OutOfMemory("memory.oom", model=family.id, width=knobs.width, height=knobs.height,
                              num_frames=knobs.num_frames,
                              placement=in_words(knobs.memory_strategy, knobs.vae_tiling))  # fmt: skip
        frames = np.asarray(output.frames[0])
        if frames.dtype != np.uint8:
            frames = np.clip(frames, 0.0, 1.0)
        return frames, family.sound(pipe, output)  # the sound made with them (a family that makes its own)

    # ------------------------------------------------------------------ models
    def load(self, source: ModelSource, strategy: str | None = None, quantize: str = "none", compile: bool = False,
             turbo: bool = False, split: Split | None = None):  # fmt: skip
        """The pipeline for `source` placed by `strategy`, with the load-time speed levers (turbo's
        LoRAs fused, fp8 weights, compiled blocks), loaded once and kept; another model, strategy or
        lever frees this one first. LoRAs a person picks are not part of this: they switch in place.
        `split`: the transformers are split across a group's GPUs (a split pipeline is never reused alone)."""
        strategy = strategy or self.offload
        key = (source, strategy, quantize, compile, turbo, split)
        if self._pipe is not None and self._pipe_key == key:
            return self._pipe
        turbo_files = self._turbo_files(source) if turbo else []  # a missing file is said before loading
        self.unload()
        import torch

        family = source.family
        dtype = getattr(torch, family.dtype) if self.device.startswith("cuda") else torch.float32
        log.info("loading %s from %s (%s on %s)", family.id, source.location, dtype, self.device)
        try:
            pipe = family.load_pipeline(source.location, dtype)
        except OSError as exc:
            if source.local:
                raise ModelNotAvailable("model.folder_load_failed", folder=source.location, detail=str(exc)) from None
            raise missing_weights(source) from None
        pipe.set_progress_bar_config(disable=True)
        return self.adopt(pipe, source, strategy, quantize, compile, turbo, turbo_files, split)

    def load_latent_upsampler(self, source: ModelSource, pipe):
        """The latent upsampler of `source`'s family (found by `Family.latent_upsampler_folder`, for
        `pipe`'s VAE), loaded once and kept beside the pipeline, on its device; `unload` frees both."""
        import torch

        family = source.family
        folder = family.latent_upsampler_folder(self.upscaler_dir, pipe.vae.config.latent_channels)
        if folder is None:
            raise ModelNotAvailable("post.latent_load_failed", upsampler=family.latent_upscaler,
                                    detail="its weights are gone from the upscaler folder and the cache")  # fmt: skip
        if self._upsampler is not None and self._upsampler_folder == folder:
            return self._upsampler
        self._upsampler = self._upsampler_folder = None
        dtype = getattr(torch, family.dtype) if self.device.startswith("cuda") else torch.float32
        log.info("loading the latent upsampler of %s from %s (%s on %s)", family.id, folder, dtype, self.device)
        try:
            upsampler = family.load_latent_upsampler(folder, dtype)
        except (OSError, ValueError) as exc:  # its words may hold this machine's folders: each path's last part only
            import re

            detail = re.sub(r"(?:[A-Za-z]:)?[/\\][^\s'\"]+", lambda path: Path(path.group()).name, str(exc))
            raise ModelNotAvailable("post.latent_load_failed", upsampler=folder.name, detail=detail) from None
        self._upsampler, self._upsampler_folder = upsampler.to(self.device), folder
        return self._upsampler

    def _turbo_files(self, source: ModelSource) -> list[Path]:
        """Turbo's LoRA files for `source`'s family (none for a distilled checkpoint), or the error
        that names what to fetch."""
        from .errors import ModelNotAvailable
        from .lora import locate
        from .request import LoraChoice
        from .speed import turbo_table

        turbo = turbo_table()[source.family.id]
        files = []
        for spec in (turbo.lora, turbo.lora_2):
            if spec is None:
                continue
            try:
                files.append(locate(LoraChoice(source=spec), self.lora_dir))
            except ModelNotAvailable:
                repo, _, name = spec.partition("::")
                raise ModelNotAvailable("speed.turbo_missing", model=source.family.id, repo=repo, file=name) from None
        return files

    def adopt(self, pipe, source: ModelSource, strategy: str, quantize: str = "none", compile: bool = False,
              turbo: bool = False, turbo_files: list[Path] | None = None, split: Split | None = None):  # fmt: skip
        """Place a loaded pipeline by `strategy`, apply the load-time speed levers, and keep it as the
        current one (`split`: its transformers split across a group's GPUs first). `load` uses this;
        so do benchmarks that build real-size pipelines with random weights in memory (they pass
        turbo's LoRA files themselves)."""
        import torch

        from .lora import fuse
        from .speed import compile_denoisers, set_shift, to_fp8, tune_convolutions, turbo_table

        placed = True
        try:
            if turbo:
                if turbo_files:
                    fuse(pipe, source.family.id, turbo_files)  # merged once: a run costs what the plain model costs
                set_shift(pipe, turbo_table()[source.family.id].flow_shift)
            if quantize == "fp8":
                to_fp8(pipe, self.device)  # layer by layer onto the GPU, before the rest
            if split is not None:
                parallelize(pipe, split)
                log.info("%s split across %d GPUs (Ulysses%s attention)", source.family.id, split.group.size,
                         " anything" if split.anything else "")  # fmt: skip
            place(pipe, strategy, self.device)
            if compile:
                compile_denoisers(pipe, self.cache_dir)
            tune_convolutions(pipe, compile)
        except torch.OutOfMemoryError:
            placed = False  # freed below, outside the except block that holds the traceback
        except BaseException:  # a lever that failed: nothing half-made is kept, and its memory goes back
            _off_the_gpu(pipe)  # the caller's frame still holds the pipeline: move its weights, not just drop them
            del pipe
            free_memory(host=True)
            raise
        if not placed:
            _off_the_gpu(pipe)
            del pipe
            free_memory(host=True)
            raise OutOfMemory("memory.does_not_fit", model=source.family.id, strategy=strategy)
        self._pipe, self._pipe_source, self._pipe_key = pipe, source, (source, strategy, quantize, compile, turbo, split)
        self._warm = False
        return pipe

    def options(self) -> dict:
        """This engine's folders and default strategy, as keyword arguments: an engine like it on
        another device (a process of a video across several GPUs) is made with them."""
        return dict(output_dir=self.output_dir, offload=self.offload, lora_dir=self.lora_dir, cache_dir=self.cache_dir,
                    upscaler_dir=self.upscaler_dir, interpolator_dir=self.interpolator_dir)  # fmt: skip

    @property
    def loaded(self) -> ModelSource | None:
        """The model whose pipeline is loaded now, or None (a pool sends a job to the GPU that holds it)."""
        return self._pipe_source

    def unload(self) -> None:
        """Free the loaded pipeline, its latent upsampler and their memory."""
        if self._pipe is None:
            return
        log.info("unloading %s", self._pipe_source.name)
        self._pipe.remove_all_hooks()
        # No reference may outlive this line: a bound method kept in a local (as it once was) held
        # the whole pipeline, and its 94 GB of pinned memory, past the free below.
        self._pipe = self._pipe_source = self._pipe_key = None
        self._upsampler = self._upsampler_folder = None  # loaded for this pipeline's VAE, beside it
        free_memory(host=True)  # offloaded weights' pinned host memory too

    def _release_pipeline_memory(self, pipe) -> None:
        # After an exception mid-run, offload hooks may leave weights on the GPU; put them back.
        maybe_free = getattr(pipe, "maybe_free_model_hooks", None)
        if maybe_free is not None:
            maybe_free()
        del maybe_free
        free_memory()


LATENT_UPSAMPLER = "ltx_latent_upsampler"  # VideoResult.upscaler when upscale 2 was made in latent space

def _fps_plan(checked: CheckedRequest) -> tuple[int, int]:
    """The interpolation factor and the file's fps for a checked request whose knobs' fps is still the
    model's (`finish` makes it the file's): the check step's, or `interpolate` alone for a request
    checked without them."""
    if checked.file_fps is None:
        return checked.knobs.interpolate, checked.knobs.fps * checked.knobs.interpolate
    return checked.fps_factor, checked.file_fps


def _off_the_gpu(pipe) -> None:
    """Take a pipeline's weights off the GPU after a failed placement (hooks first, then a move that
    may itself fail on half-converted weights: what can move, moves)."""
    try:
        pipe.remove_all_hooks()
        pipe.to("cpu")
    except Exception as exc:  # noqa: BLE001 - best effort on a pipeline that is being thrown away
        log.warning("could not move a failed pipeline off the GPU: %s", exc)


def _segment_progress(on_progress: OnProgress | None, segment: int, segments: int) -> OnProgress | None:
    """`on_progress` with each report saying which segment it is about."""
    if on_progress is None or segments == 1:
        return on_progress
    from dataclasses import replace

    return lambda progress: on_progress(replace(progress, segment=segment, segments=segments))


def _metadata(result: VideoResult) -> dict:
    data = result.metadata()
    if result.engine == "diffusers":
        import diffusers

        data["diffusers"] = diffusers.__version__
    return data


__all__ = ["CheckedRequest", "Progress", "VideoEngine"]
