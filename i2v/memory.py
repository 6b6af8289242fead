"""GPU memory: what a run will need, and what to do when it will not fit.

- `estimate(shape)`: peak GPU memory, host RAM and seconds of one run, from a model fitted to
  measurements of real-size pipelines on a real GPU (configs/memory.toml, bench/fit_memory.py).
- `pick(vram_gb, ram_gb=...)`: the best preset that fits (configs/presets.toml): quality first,
  then speed; offloaded weights must also fit the host RAM when it is known.
- `downgrade(shape, vram_gb)`: the rungs to step down until a run fits, each with its estimate.
A `RunShape` is the part of a request the planner turns: its fields are the request's own knobs.
This module knows nothing about pipelines or the machine (i2v/hardware.py reads that); the engine
applies what it decides.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields, replace
from functools import cache

from messages import Message, note

from .chain import chained_frames
from .errors import InvalidInput
from .families import CONFIG_DIR
from .request import STRATEGIES, GenerationRequest, Quantize, Strategy

# ---------------------------------------------------------------------- the estimator
PHASES = ("encode", "denoise", "decode")


@dataclass(frozen=True)
class RunShape:
    """What a run would use: the family and the request's knobs the planner turns (same names)."""

    family: str
    height: int
    width: int
    num_frames: int
    num_inference_steps: int
    memory_strategy: Strategy = "none"
    vae_tiling: bool = False
    quantize: Quantize = "none"  # the speed levers that change memory or time (i2v/speed.py)
    compile: bool = False
    guidance_scale: float | None = None  # 1.0 or less: no CFG pass (turbo)

    @classmethod
    def knobs(cls) -> list[str]:
        """The request's knobs a run shape holds."""
        return [f.name for f in fields(cls) if f.name != "family"]

    @classmethod
    def of(cls, family: str, knobs: GenerationRequest, **changes) -> RunShape:
        """The run shape of a request whose defaults are filled in (a checked request's knobs)."""
        values = {name: getattr(knobs, name) for name in cls.knobs()}
        return cls(family, **{**values, **changes})

    def with_(self, **changes) -> RunShape:
        return replace(self, **changes)


@dataclass(frozen=True)
class Estimate:
    shape: RunShape
    peak_gb: float
    seconds: float
    measured: bool  # False when the family or strategy was derived, not measured
    phases_gb: dict
    host_gb: float = 0.0  # host RAM the weights need while they wait off the GPU (offload strategies)


@cache
def memory_profiles() -> dict[str, dict]:
    """configs/memory.toml (fitted by bench/fit_memory.py) plus configs/memory_derived.toml."""
    profiles = {}
    for name in ("memory.toml", "memory_derived.toml"):
        path = CONFIG_DIR / name
        if path.is_file():
            profiles.update(tomllib.loads(path.read_text(encoding="utf-8"))["families"])
    return profiles


def _profile(family: str) -> dict:
    profiles = memory_profiles()
    profile = profiles.get(family)
    if profile is None:
        raise InvalidInput("memory.no_profile", family=family)
    if "same_as" in profile:  # a derived profile: another family's, with what it adds (extra_gb)
        return {**profiles[profile["same_as"]], "source": profile["source"], "extra_gb": profile.get("extra_gb", 0.0)}
    return profile


def latent_ktokens(height: int, width: int, num_frames: int, spatial: int, temporal: int) -> float:
    """Thousands of latent tokens the denoiser sees: `spatial` pixels a side and `temporal` frames
    (after the first) make one token. The estimator's size axis, and the fit's (bench/fit_memory.py)."""
    return ((num_frames - 1) // temporal + 1) * (height // spatial) * (width // spatial) / 1e3


def windows(num_frames: int, window: dict | None) -> int:
    """How many windows a long-video family denoises for `num_frames`: the first holds `frames`,
    each next one adds `stride` (SkyReels-V2 DF: 97, then 80 more each; FramePack: sections of 36
    frames, 37 with the photo's). 1 for a family without a window: it sees the whole clip at once."""
    if window is None:
        return 1
    overlap = window["frames"] - window["stride"]
    return max(1, -(-(num_frames - overlap) // window["stride"]))


def denoised_ktokens(height: int, width: int, num_frames: int, latent: dict, window: dict | None = None) -> float:
    """Thousands of latent tokens one denoiser call sees: the whole clip, or for a long-video family
    one window of at most `frames` frames plus its `context` in latent frames of the full size
    (FramePack packs its history: one frame as it is, two at 1/8 and sixteen at 1/64 of a frame's
    tokens each)."""
    spatial, temporal = latent["spatial"], latent["temporal"]
    if window is None:
        return latent_ktokens(height, width, num_frames, spatial, temporal)
    one = latent_ktokens(height, width, min(num_frames, window["frames"]), spatial, temporal)
    return one + window.get("context", 0.0) * (height // spatial) * (width // spatial) / 1e3


def estimate(shape: RunShape) -> Estimate:
    """Peak GPU memory (GB), host RAM (GB) and seconds for one run of `shape`. A long-video family
    (a profile with a `window`) denoises one window at a time: its denoise peak and its seconds per
    step follow the window, its steps are those of every window, and its encode and decode follow
    the clip (FramePack decodes each section and keeps the clip made so far on the GPU)."""
    profile = _profile(shape.family)
    h, w, f = shape.height, shape.width, shape.num_frames
    window = profile.get("window")
    ktok = denoised_ktokens(h, w, f, profile["latent"], window)
    loops = windows(f, window)  # denoising loops, each of num_inference_steps
    frame, video = h * w / 1e6, h * w * f / 1e6
    fitted = profile["peak_gb"]
    measured = profile["source"] == "measured" and shape.memory_strategy in fitted
    # A strategy a family was not measured with: group offload's peak, the nearest; where only all
    # on the GPU was measured (the long-video families), its peak, which no offload exceeds.
    coef = fitted.get(shape.memory_strategy) or fitted.get("group") or fitted.get("model") or fitted["none"]
    tiled = shape.vae_tiling and coef["decode_tiled"] > 0
    held = coef.get("held_clip", 0.0) * video  # a window family keeps the clip made so far on the GPU
    phases = {
        "encode": coef["encode_tiled"] if tiled else coef["encode"][0] * frame + coef["encode"][1] * video + coef["encode"][2],
        "denoise": coef["denoise"][0] * ktok + coef["denoise"][1] + held,
        "decode": coef["decode_tiled"] + held if tiled else (
            coef["decode"][0] * frame + coef["decode"][1] * video + coef["decode"][2]
        ),
    }  # fmt: skip
    c1, c2 = profile["seconds_per_step"]
    # Seconds per step with the strategy: k times the step all on the GPU, plus c of copies.
    k, c = profile["strategy_speed"].get(shape.memory_strategy, (8.0, 0.0))  # not measured: say it is slow
    overhead = profile.get("run_overhead_seconds", {}).get(shape.memory_strategy, 0.0)
    # What each window after the first costs beyond its steps, measured (0.1 s all on the GPU; with
    # model offload, FramePack would move its transformer back in after each section's decode).
    overhead += (loops - 1) * profile.get("window_overhead_seconds", {}).get(shape.memory_strategy, 0.0)
    steps = shape.num_inference_steps * loops
    seconds = steps * ((c1 * ktok + c2 * ktok**2) * k * step_factor(shape) + c) + overhead
    # The decode: a line in megapixels of video per strategy, with and without tiling; where that
    # was not measured, the nearest measured strategy's (as for the peak), tiling taking twice as long.
    lines = profile["decode_seconds"]
    a, b = lines.get(shape.memory_strategy + ("_tiled" if shape.vae_tiling else "")) or [
        v * (2 if shape.vae_tiling else 1) for v in lines.get(shape.memory_strategy) or lines.get("group") or lines["none"]
    ]
    seconds += max(0.0, a * video + b)
    levers = presets()["planner"]["levers"]
    if levers_used(shape)[0] == "fp8":
        denoiser_gb = sum(gb for name, gb in profile["weights_gb"].items() if name in DENOISERS)
        phases = {k: v - levers["fp8_weight_saving"] * denoiser_gb for k, v in phases.items()}
    extra = profile.get("extra_gb", 0.0)  # what a derived family holds beyond the family it is derived from
    phases = {k: round(max(0.0, v) + extra, 2) for k, v in phases.items()}  # a fitted line can dip below 0 on tiny runs
    # Offloaded weights live in host RAM; group offload pins a rounded-up copy (presets.toml says how much).
    host = presets()["planner"]["host_ram_factor"][shape.memory_strategy] * sum(profile["weights_gb"].values())
    return Estimate(shape, max(phases.values()), round(seconds, 1), measured, phases, round(host, 1))


DENOISERS = ("transformer", "transformer_2", "unet")


@dataclass(frozen=True)
class LongEstimate:
    """A long or post-processed video on top of one call's estimate: the segments run one after the
    other on the same GPU memory (the peak is one call's), then interpolation and upscaling run on
    the finished frames, which host memory holds until the file is written."""

    segments: int
    num_frames: int  # the file's
    width: int
    height: int
    fps_factor: int
    render_seconds: float  # every segment
    interpolate_seconds: float
    upscale_seconds: float  # Lanczos on the CPU, or an upscaler file of ESRGAN's size on the GPU
    host_gb: float

    @property
    def seconds(self) -> float:
        return round(self.render_seconds + self.interpolate_seconds + self.upscale_seconds, 1)


def long_estimate(one: Estimate, segments: int = 1, interpolate: int = 1, upscale: int = 1,
                  upscaler_file: bool = False) -> LongEstimate:  # fmt: skip
    """The time and host memory of `segments` calls shaped like `one`, joined (each after the first
    adds its frames but one), interpolated and upscaled."""
    post = presets()["planner"]["post"]
    shape = one.shape
    frames = chained_frames(shape.num_frames, segments)
    megapixels = shape.height * shape.width / 1e6
    interpolate_s = 0.0
    if interpolate > 1:
        interpolate_s = (frames - 1) * megapixels * post["interpolate_seconds_per_megapixel_pair"]
        interpolate_s *= post["interpolate_x4_factor"] if interpolate == 4 else 1.0
    final = (frames - 1) * interpolate + 1
    upscale_s = 0.0
    if upscale > 1 and upscaler_file:  # the network runs at the input's size, whatever its scale
        upscale_s = final * megapixels * post["upscaler_seconds_per_input_megapixel"]
    elif upscale > 1:
        upscale_s = final * megapixels * upscale**2 * post["lanczos_seconds_per_output_megapixel"]
    host = final * megapixels * upscale**2 * 3 / 1e3 * post["host_copies"]
    return LongEstimate(segments, final, shape.width * upscale, shape.height * upscale, interpolate,
                        round(one.seconds * segments, 1), round(interpolate_s, 1),
                        round(upscale_s, 1), round(host, 2))  # fmt: skip


def levers_used(shape: RunShape) -> tuple[str, bool]:
    """The fp8 and compile levers `shape` really runs with: where i2v/speed.py makes them."""
    from .families import get_family
    from .speed import compile_fits, fp8_fits

    fp8 = shape.quantize == "fp8" and fp8_fits(get_family(shape.family), shape.memory_strategy)
    return ("fp8" if fp8 else "none"), shape.compile and compile_fits(shape.memory_strategy)


def step_factor(shape: RunShape) -> float:
    """How the speed levers that apply to `shape` scale a denoising step's seconds (presets.toml)."""
    levers = presets()["planner"]["levers"]
    factor = 1.0
    quantize, compile = levers_used(shape)
    if compile:
        factor *= levers["compile_step"].get(shape.family, levers["compile_step"]["default"])
    elif quantize == "fp8":
        factor *= levers["fp8_step"]
    if shape.guidance_scale is not None and shape.guidance_scale <= 1.0:
        factor *= levers["no_cfg_step"]
    return factor


# ---------------------------------------------------------------------- presets and downgrades
@cache
def presets() -> dict:
    data = tomllib.loads((CONFIG_DIR / "presets.toml").read_text(encoding="utf-8"))
    unknown = set(data) - {"planner", "candidates", "tiers"}
    if "levers" in data.get("planner", {}):
        extra = set(data["planner"]["levers"]) - {"fp8_weight_saving", "fp8_step", "compile_step", "no_cfg_step"}
        if extra:
            raise ValueError(f"presets.toml: unknown lever keys {sorted(extra)}")
    if unknown:
        raise ValueError(f"presets.toml: unknown keys {sorted(unknown)}")
    for candidate in data["candidates"]:
        extra = set(candidate) - {"family", "height", "width", "num_frames", "num_inference_steps"}
        if extra:
            raise ValueError(f"presets.toml: unknown candidate keys {sorted(extra)}")
    return data


def usable_gb(vram_gb: float) -> float:
    """What a run may use of a card with `vram_gb` free: the margin from presets.toml kept back."""
    planner = presets()["planner"]
    return max(0.0, vram_gb - planner["margin_gb"] - planner["margin_fraction"] * vram_gb)


def usable_ram_gb(ram_gb: float) -> float:
    """What offloaded weights may take of `ram_gb` of host RAM: the system and the app keep the rest."""
    planner = presets()["planner"]
    return max(0.0, ram_gb - planner["ram_margin_gb"] - planner["ram_margin_fraction"] * ram_gb)


def _fits(guess: Estimate, vram_gb: float, ram_gb: float | None) -> bool:
    """Within the GPU's usable memory and, where the host RAM is known, within its usable part."""
    return guess.peak_gb <= usable_gb(vram_gb) and (ram_gb is None or guess.host_gb <= usable_ram_gb(ram_gb))


def in_words(strategy: Strategy, vae_tiling: bool) -> Message:
    """How a run holds the model, for people: 'all on the GPU', 'group offload, VAE tiling', ..."""
    where = "placement.gpu" if strategy == "none" else "placement.offload"
    return note(where + ("_tiled" if vae_tiling else ""), strategy=strategy)


def speed_factor(gpu_name: str | None) -> float:
    """How many times an H200's seconds a run takes on `gpu_name` (presets.toml's `speed`, matched
    by a part of the name; an unknown GPU, or none named, gets `default`)."""
    table = presets()["planner"]["speed"]
    for key, factor in table.items():
        if gpu_name and key != "default" and key.lower() in gpu_name.lower():
            return factor
    return table["default"]


def _tiling_choices(family: str) -> tuple[bool, ...]:
    from .families import get_family

    return (False, True) if get_family(family).vae_tiling else (False,)


def _ways(shape: RunShape):
    """The same request with each strategy and tiling (where the VAE has it), fastest first."""
    for strategy in STRATEGIES:
        for tiling in _tiling_choices(shape.family):
            yield shape.with_(memory_strategy=strategy, vae_tiling=tiling)


def pick(
    vram_gb: float, families: list[str] | None = None, gpu_name: str | None = None, ram_gb: float | None = None
) -> Estimate | None:
    """The best preset for a card with `vram_gb` free (and `ram_gb` of host RAM, when known): quality
    first, then speed. None if nothing fits."""
    limit = presets()["planner"]["max_minutes"] * 60
    factor = speed_factor(gpu_name)
    for candidate in presets()["candidates"]:
        if families is not None and candidate["family"] not in families:
            continue
        if candidate["family"] not in memory_profiles():
            continue
        for way in _ways(RunShape(**candidate)):
            guess = estimate(way)
            if _fits(guess, vram_gb, ram_gb) and guess.seconds * factor <= limit:
                return _scaled(guess, factor)
    return None


def _scaled(guess: Estimate, factor: float) -> Estimate:
    """`guess` with its seconds (measured on an H200) times a GPU's speed factor."""
    return replace(guess, seconds=round(guess.seconds * factor, 1))


@dataclass(frozen=True)
class Rung:
    """One step down: what changed, in words, the shape after it, and its estimate (None when
    the family has no memory profile, or estimates were not asked for)."""

    change: Message
    shape: RunShape
    estimate: Estimate | None


def rungs(shape: RunShape, with_estimates: bool = True) -> list[Rung]:
    """The downgrade ladder from `shape`, in the order knobs drop: first what costs no quality
    (VAE tiling where the VAE has it, then offload: model, group, sequential), then frames (to 2/3,
    then 1/2), then resolution (to 2/3 of each side). Each rung keeps the ones before it. With
    estimates, a rung that would not lower the estimated peak is left out (VAE tiling changes
    nothing for I2VGen-XL; SVD-XT's group offload peaks above its model offload): the plan only goes down."""
    estimates = with_estimates and shape.family in memory_profiles()
    ladder: list[Rung] = []
    current, peak = shape, estimate(shape).peak_gb if estimates else None
    for change, update in _changes(shape):
        after = current.with_(**update)
        if not _lower(after, current):
            continue
        guess = estimate(after) if estimates else None
        if guess is not None and guess.peak_gb >= peak - 0.005:
            continue
        ladder.append(Rung(change, after, guess))
        current, peak = after, (guess.peak_gb if guess else peak)
    return ladder


def _changes(shape: RunShape):
    """(words, knobs) for each rung of the ladder, in order; frames and resolution are fractions of
    the asked shape."""
    from .families import get_family

    family = get_family(shape.family)
    if family.vae_tiling:
        yield note("plan.tiling"), {"vae_tiling": True}
    for strategy in STRATEGIES[STRATEGIES.index(shape.memory_strategy) + 1 :]:
        yield note("plan.offload", strategy=strategy), {"memory_strategy": strategy}
    yield from _smaller(shape, family, combined=False)


def _smaller(shape: RunShape, family, combined: bool = True):
    """(words, knobs) of smaller videos, least loss first: frames to 2/3 and 1/2, resolution to 2/3
    of each side (where the family takes any size) and, with `combined`, both at 2/3."""
    step, offset, multiple = family.frame_step, family.frame_offset, family.size_multiple
    fewer = []
    for fraction in (2 / 3, 1 / 2):
        frames = round((shape.num_frames - offset) * fraction / step) * step + offset
        frames = family.round_frames(max(step + offset, family.min_frames, frames), [])  # a room's own rule too
        fewer.append(frames)
        yield note("plan.frames", num_frames=fewer[-1]), {"num_frames": fewer[-1]}
    if family.size_rule == "multiple":
        height = max(multiple, int(shape.height * 2 / 3) // multiple * multiple)
        width = max(multiple, int(shape.width * 2 / 3) // multiple * multiple)
        yield note("plan.resolution", width=width, height=height), {"height": height, "width": width}
        if combined:
            yield note("plan.resolution_frames", width=width, height=height, num_frames=fewer[0]), {
                "height": height, "width": width, "num_frames": fewer[0]}  # fmt: skip


def _lower(after: RunShape, before: RunShape) -> bool:
    """Whether `after` is a step down from `before` (and not the same, or a step back up)."""
    if after == before:
        return False
    return after.num_frames <= before.num_frames and after.height * after.width <= before.height * before.width and (
        STRATEGIES.index(after.memory_strategy) >= STRATEGIES.index(before.memory_strategy)
        and after.vae_tiling >= before.vae_tiling
    )


def downgrade(
    shape: RunShape, vram_gb: float, ram_gb: float | None = None, gpu_name: str | None = None
) -> tuple[Estimate, list[Rung]]:
    """The estimate for `shape` and, if it does not fit in `vram_gb` (and `ram_gb`), the rungs
    down to the first that does (all of them when none does). Seconds are for `gpu_name`, as in `pick`."""
    factor = speed_factor(gpu_name)
    now = _scaled(estimate(shape), factor)
    if _fits(now, vram_gb, ram_gb):
        return now, []
    plan = []
    for rung in rungs(shape):
        plan.append(replace(rung, estimate=_scaled(rung.estimate, factor)))
        if _fits(rung.estimate, vram_gb, ram_gb):
            break
    return now, plan


def faster_alternative(
    shape: RunShape, than: Estimate, vram_gb: float, ram_gb: float | None = None, gpu_name: str | None = None
) -> Rung | None:
    """When `than` (a plan that keeps the video as asked) is slow because of its memory strategy (at
    least twice the time the video would take all on the GPU: sequential offload, say), a smaller
    video (fewer frames, or a lower resolution) that fits, with the fastest strategy that fits, in
    less time: offered beside that plan, never applied unasked. The least loss of quality first;
    None when the plan costs little time or nothing smaller is faster. Seconds are for `gpu_name`."""
    from .families import get_family

    shape = shape.with_(memory_strategy="none", vae_tiling=False)  # the video as asked, however held
    unhindered = estimate(shape).seconds * speed_factor(gpu_name)
    if than.seconds < 2 * unhindered:
        return None
    for change, update in _smaller(shape, get_family(shape.family)):
        smaller = shape.with_(**update)
        if not _lower(smaller, shape):
            continue
        fit = fastest_fit(smaller, vram_gb, ram_gb, gpu_name)
        if fit is not None and fit.seconds < than.seconds:
            return Rung(change, fit.shape, fit)
    return None


def fastest_fit(
    shape: RunShape, vram_gb: float, ram_gb: float | None = None, gpu_name: str | None = None
) -> Estimate | None:
    """The fastest strategy (and VAE tiling only if needed) that fits `shape` in `vram_gb` (and
    `ram_gb`); None when the family has no memory profile or nothing fits. Tiling asked for stays on.
    Seconds are for `gpu_name`, as in `pick`."""
    if shape.family not in memory_profiles():
        return None
    if shape.vae_tiling and _tiling_choices(shape.family) == (False,):  # the VAE has none to keep
        shape = shape.with_(vae_tiling=False)
    for way in _ways(shape):
        if shape.vae_tiling and not way.vae_tiling:
            continue
        guess = estimate(way)
        if _fits(guess, vram_gb, ram_gb):
            return _scaled(guess, speed_factor(gpu_name))
    return None
