"""GPU memory: what the machine has, what a run will need, and what to do when it will not fit.

- `detect()`: every CUDA GPU (name, total and free memory) and the host RAM; with no GPU, the
  machine can run tiny models and the camera engine only, and `Hardware.summary` says so.
- `estimate(settings)`: peak GPU memory and seconds of one run, from a model fitted to
  measurements of real-size pipelines on a real GPU (configs/memory.toml, bench/fit_memory.py).
- `pick(vram_gb, ram_gb=...)`: the best preset that fits (configs/presets.toml): quality first,
  then speed; offloaded weights must also fit the host RAM when it is known.
- `downgrade(settings, vram_gb)`: the rungs to step down until a run fits, each with its estimate.
This module knows nothing about pipelines; the engine applies what it decides.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, replace
from functools import cache

from messages import Message, note

from .errors import InvalidInput
from .models import CONFIG_DIR

GiB = 2**30


@dataclass(frozen=True)
class GPU:
    index: int
    name: str
    total_gb: float
    free_gb: float


@dataclass(frozen=True)
class Hardware:
    gpus: tuple[GPU, ...]
    ram_gb: float

    @property
    def summary(self) -> str:
        if not self.gpus:
            return f"No CUDA GPU: CPU only ({self.ram_gb:.0f} GB RAM), for tiny models and the camera engine"
        cards = "; ".join(f"GPU {g.index}: {g.name}, {g.free_gb:.1f} of {g.total_gb:.1f} GB free" for g in self.gpus)
        return f"{cards}; {self.ram_gb:.0f} GB RAM"


def detect() -> Hardware:
    """Every CUDA GPU and the host RAM, as they are now."""
    import torch

    gpus = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(index)
            gpus.append(GPU(index, torch.cuda.get_device_name(index), total / GiB, free / GiB))
    return Hardware(tuple(gpus), _ram_bytes() / GiB)


def host_ram_gb() -> float | None:
    """This machine's RAM in GB; None when the system does not say."""
    return _ram_bytes() / GiB or None


def _ram_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


# ---------------------------------------------------------------------- the estimator
Strategy = str  # "none" | "model" | "group" | "sequential"
STRATEGIES = ("none", "model", "group", "sequential")  # fastest first
PHASES = ("encode", "denoise", "decode")


@dataclass(frozen=True)
class Settings:
    """What a run would use: the knobs the planner turns."""

    family: str
    height: int
    width: int
    num_frames: int
    num_inference_steps: int
    strategy: Strategy = "none"
    vae_tiling: bool = False

    def with_(self, **changes) -> Settings:
        return replace(self, **changes)


@dataclass(frozen=True)
class Estimate:
    settings: Settings
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
    if "same_as" in profile:
        return {**profiles[profile["same_as"]], "source": profile["source"]}
    return profile


def latent_ktokens(height: int, width: int, num_frames: int, spatial: int, temporal: int) -> float:
    """Thousands of latent tokens the denoiser sees: `spatial` pixels a side and `temporal` frames
    (after the first) make one token. The estimator's size axis, and the fit's (bench/fit_memory.py)."""
    return ((num_frames - 1) // temporal + 1) * (height // spatial) * (width // spatial) / 1e3


def estimate(settings: Settings) -> Estimate:
    """Peak GPU memory (GB) and seconds for one run with `settings`."""
    profile = _profile(settings.family)
    h, w, f = settings.height, settings.width, settings.num_frames
    ktok = latent_ktokens(h, w, f, profile["latent"]["spatial"], profile["latent"]["temporal"])
    frame, video = h * w / 1e6, h * w * f / 1e6
    fitted = profile["peak_gb"]
    measured = profile["source"] == "measured" and settings.strategy in fitted
    # A strategy a family was not measured with (none today): group offload's peak, the nearest.
    coef = fitted.get(settings.strategy) or fitted.get("group") or fitted["model"]
    tiled = settings.vae_tiling and coef["decode_tiled"] > 0
    phases = {
        "encode": coef["encode_tiled"] if tiled else coef["encode"][0] * frame + coef["encode"][1] * video + coef["encode"][2],
        "denoise": coef["denoise"][0] * ktok + coef["denoise"][1],
        "decode": coef["decode_tiled"] if tiled else (
            coef["decode"][0] * frame + coef["decode"][1] * video + coef["decode"][2]
        ),
    }  # fmt: skip
    c1, c2 = profile["seconds_per_step"]
    # Seconds per step with the strategy: k times the step all on the GPU, plus c of copies.
    k, c = profile["strategy_speed"].get(settings.strategy, (8.0, 0.0))  # not measured: say it is slow
    overhead = profile.get("run_overhead_seconds", {}).get(settings.strategy, 0.0)
    seconds = settings.num_inference_steps * ((c1 * ktok + c2 * ktok**2) * k + c) + overhead
    # The decode: a line in megapixels of video per strategy, with and without tiling; where that
    # was not measured, the nearest measured strategy's (as for the peak), tiling taking twice as long.
    lines = profile["decode_seconds"]
    a, b = lines.get(settings.strategy + ("_tiled" if settings.vae_tiling else "")) or [
        v * (2 if settings.vae_tiling else 1) for v in lines.get(settings.strategy) or lines.get("group") or lines["none"]
    ]
    seconds += max(0.0, a * video + b)
    phases = {k: round(max(0.0, v), 2) for k, v in phases.items()}  # a line fitted on big runs can dip below 0 on tiny ones
    # Offloaded weights live in host RAM; group offload pins a rounded-up copy (presets.toml says how much).
    host = presets()["planner"]["host_ram_factor"][settings.strategy] * sum(profile["weights_gb"].values())
    return Estimate(settings, max(phases.values()), round(seconds, 1), measured, phases, round(host, 1))


# ---------------------------------------------------------------------- presets and downgrades
@cache
def presets() -> dict:
    data = tomllib.loads((CONFIG_DIR / "presets.toml").read_text(encoding="utf-8"))
    unknown = set(data) - {"planner", "candidates", "tiers"}
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
    from .models import get_family

    return (False, True) if get_family(family).vae_tiling else (False,)


def _ways(settings: Settings):
    """The same request with each strategy and tiling (where the VAE has it), fastest first."""
    for strategy in STRATEGIES:
        for tiling in _tiling_choices(settings.family):
            yield settings.with_(strategy=strategy, vae_tiling=tiling)


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
        for way in _ways(Settings(**candidate)):
            guess = estimate(way)
            if _fits(guess, vram_gb, ram_gb) and guess.seconds * factor <= limit:
                return _scaled(guess, factor)
    return None


def _scaled(guess: Estimate, factor: float) -> Estimate:
    """`guess` with its seconds (measured on an H200) times a GPU's speed factor."""
    return replace(guess, seconds=round(guess.seconds * factor, 1))


@dataclass(frozen=True)
class Rung:
    """One step down: what changed, in words, the settings after it, and its estimate (None when
    the family has no memory profile, or estimates were not asked for)."""

    change: Message
    settings: Settings
    estimate: Estimate | None


def rungs(settings: Settings, with_estimates: bool = True) -> list[Rung]:
    """The downgrade ladder from `settings`, in the order knobs drop: first what costs no quality
    (VAE tiling where the VAE has it, then offload: model, group, sequential), then frames (to 2/3,
    then 1/2), then resolution (to 2/3 of each side). Each rung keeps the ones before it."""
    from .models import get_family

    family = get_family(settings.family)
    steps: list[tuple[Message, Settings]] = []
    current = settings
    if not current.vae_tiling and family.vae_tiling:
        current = current.with_(vae_tiling=True)
        steps.append((note("plan.tiling"), current))
    for strategy in STRATEGIES[STRATEGIES.index(current.strategy) + 1 :]:
        current = current.with_(strategy=strategy)
        steps.append((note("plan.offload", strategy=strategy), current))
    step, offset, multiple = family.frame_step, family.frame_offset, family.size_multiple
    for fraction in (2 / 3, 1 / 2):
        frames = round((settings.num_frames - offset) * fraction / step) * step + offset
        frames = max(step + offset, family.min_frames, frames)
        if frames < current.num_frames:
            current = current.with_(num_frames=frames)
            steps.append((note("plan.frames", num_frames=frames), current))
    if family.size_rule == "multiple":
        height = max(multiple, int(settings.height * 2 / 3) // multiple * multiple)
        width = max(multiple, int(settings.width * 2 / 3) // multiple * multiple)
        if (height, width) != (current.height, current.width):
            current = current.with_(height=height, width=width)
            steps.append((note("plan.resolution", width=width, height=height), current))
    estimates = with_estimates and settings.family in memory_profiles()
    return [Rung(change, after, estimate(after) if estimates else None) for change, after in steps]


def downgrade(
    settings: Settings, vram_gb: float, ram_gb: float | None = None, gpu_name: str | None = None
) -> tuple[Estimate, list[Rung]]:
    """The estimate for `settings` and, if it does not fit in `vram_gb` (and `ram_gb`), the rungs
    down to the first that does (all of them when none does). Seconds are for `gpu_name`, as in `pick`."""
    factor = speed_factor(gpu_name)
    now = _scaled(estimate(settings), factor)
    if _fits(now, vram_gb, ram_gb):
        return now, []
    plan = []
    for rung in rungs(settings):
        plan.append(replace(rung, estimate=_scaled(rung.estimate, factor)))
        if _fits(rung.estimate, vram_gb, ram_gb):
            break
    return now, plan


def fastest_fit(
    settings: Settings, vram_gb: float, ram_gb: float | None = None, gpu_name: str | None = None
) -> Estimate | None:
    """The fastest strategy (and VAE tiling only if needed) that fits `settings` in `vram_gb` (and
    `ram_gb`); None when the family has no memory profile or nothing fits. Tiling asked for stays on.
    Seconds are for `gpu_name`, as in `pick`."""
    if settings.family not in memory_profiles():
        return None
    if settings.vae_tiling and _tiling_choices(settings.family) == (False,):  # the VAE has none to keep
        settings = settings.with_(vae_tiling=False)
    for way in _ways(settings):
        if settings.vae_tiling and not way.vae_tiling:
            continue
        guess = estimate(way)
        if _fits(guess, vram_gb, ram_gb):
            return _scaled(guess, speed_factor(gpu_name))
    return None
