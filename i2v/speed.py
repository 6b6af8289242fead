"""Speed: the levers that make a run faster, which of them a request asks for, which can work here,
and applying them to a pipeline.

- `speed` picks the levers: `exact` none; `fast` fp8 denoiser weights, compiled repeated blocks and a
  step cache (all keep the model's steps and guidance); `turbo` the family's step-distilled weights
  (configs/turbo.toml: their steps, guidance and shift) with fp8 and compile. Each lever can also
  be set on its own (`quantize`, `compile`, `step_cache`), which wins over `speed`.
- `decide` says, for one run on one device, which levers apply and why the others do not (no GPU,
  a GPU older than fp8, torchao missing, an offload strategy they do not combine with, a single
  run that would not pay back a compile's warm-up).
- `to_fp8` and `compile_denoisers` apply the load-time levers once per loaded pipeline (the engine
  fuses turbo's LoRAs first, i2v/lora.py); `set_step_cache` the per-run one.
This module knows nothing about the web page or the planner; the engine calls it.
"""

from __future__ import annotations

import logging
import os
import re
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from messages import note

from .errors import InvalidInput
from .families import CONFIG_DIR, Family
from .request import GenerationRequest, LeverReport

log = logging.getLogger(__name__)

FP8_CAPABILITY = (8, 9)  # Ada and Hopper: fp8 matmuls in hardware
COMPILE_STRATEGIES = ("none", "model")  # compiled blocks inside offload hooks that move blocks: not tried
FP8_STRATEGIES = ("none",)  # fp8 weights are made on the GPU; offload moving them was not measured
STEP_CACHES = {"first_block": "FirstBlockCacheConfig", "taylorseer": "TaylorSeerCacheConfig"}
LEVERS = ("quantize", "compile", "step_cache")
MIN_CACHE_STEPS = 8  # below this, speed fast leaves the step cache off: few steps leave nothing to skip


@dataclass(frozen=True)
class Turbo:
    """One family's step-distilled weights and their published settings (configs/turbo.toml)."""

    family: str
    kind: str  # "lora" or "checkpoint"
    num_inference_steps: int
    guidance_scale: float
    source: str
    lora: str | None = None
    lora_2: str | None = None
    hub_id: str | None = None
    flow_shift: float | None = None


@cache
def turbo_table() -> dict[str, Turbo]:
    data = tomllib.loads((CONFIG_DIR / "turbo.toml").read_text(encoding="utf-8"))
    if set(data) - {"turbo"}:
        raise ValueError(f"turbo.toml: unknown top-level keys {sorted(set(data) - {'turbo'})}")
    table = {}
    for family, entry in data["turbo"].items():
        unknown = set(entry) - set(Turbo.__dataclass_fields__)
        if unknown or entry.get("kind") not in ("lora", "checkpoint"):
            raise ValueError(f"turbo.toml [{family}]: unknown keys {sorted(unknown)} or kind {entry.get('kind')!r}")
        needed = "lora" if entry["kind"] == "lora" else "hub_id"
        if needed not in entry:
            raise ValueError(f"turbo.toml [{family}]: kind {entry['kind']!r} needs {needed!r}")
        table[family] = Turbo(family=family, **entry)
    return table


def turbo_for(family: Family) -> Turbo:
    """The family's turbo, or a refusal that says which families have one."""
    turbo = turbo_table().get(family.id)
    if turbo is None:
        raise InvalidInput("speed.no_turbo", model=family.id, known=", ".join(turbo_table()))
    return turbo


def asked_levers(knobs: GenerationRequest) -> dict:
    """The levers a request asks for: each set on its own, else from `speed`."""
    fast = knobs.speed in ("fast", "turbo")
    by_speed = {"quantize": "fp8" if fast else "none", "compile": fast,
                "step_cache": "first_block" if knobs.speed == "fast" else "none"}  # fmt: skip
    return {name: by_speed[name] if getattr(knobs, name) is None else getattr(knobs, name) for name in LEVERS}


def fp8_fits(family: Family, strategy: str) -> bool:
    """Whether fp8 weights are made for `family` under `strategy`: bf16 models, all on the GPU."""
    return family.dtype == "bfloat16" and strategy in FP8_STRATEGIES


def compile_fits(strategy: str) -> bool:
    """Whether the denoiser is compiled under `strategy` (no offload, or model offload)."""
    return strategy in COMPILE_STRATEGIES


def planned(family: Family, speed: str, quantize: str | None = None, compile: bool | None = None) -> dict:
    """The run settings `speed` gives `family`, for estimates: its fp8 and compile levers (those set on
    their own win) and, under turbo where the family has distilled weights, their steps and guidance."""
    from types import SimpleNamespace

    levers = asked_levers(SimpleNamespace(speed=speed, quantize=quantize, compile=compile, step_cache=None))
    settings = {"quantize": levers["quantize"], "compile": levers["compile"]}
    turbo = turbo_table().get(family.id) if speed == "turbo" else None
    if turbo is not None:
        settings.update(num_inference_steps=turbo.num_inference_steps, guidance_scale=turbo.guidance_scale)
    return settings


def decide(knobs: GenerationRequest, family: Family, device: str, runs_once: bool,
           explicit: frozenset[str]) -> tuple[dict, list[LeverReport]]:  # fmt: skip
    """Which of the asked levers (`knobs` with them filled in) apply to this run on `device`: the
    knob values that will be used, and a report for each lever asked for."""
    used = {"quantize": "none", "compile": False, "step_cache": "none"}
    reports: list[LeverReport] = []
    if knobs.speed == "turbo" and family.pipeline:
        turbo = turbo_table()[family.id]
        reports.append(LeverReport(lever="turbo", value=turbo.kind, applied=True,
                                   reason=note("lever.turbo", source=turbo.source)))  # fmt: skip
    gpu = device.startswith("cuda")
    strategy = knobs.memory_strategy
    if knobs.quantize == "fp8":
        why = None
        if not family.pipeline:
            why = note("lever.no_denoiser")
        elif not gpu:
            why = note("lever.needs_gpu", lever="fp8", device=device)
        elif _capability(device) < FP8_CAPABILITY:
            why = note("lever.fp8_old_gpu", capability=".".join(map(str, _capability(device))))
        elif not fp8_fits(family, strategy):  # torchao's per-row fp8 is made from bf16 weights, on the GPU
            bf16 = family.dtype == "bfloat16"
            why = note("lever.fp8_offload", strategy=strategy) if bf16 else note("lever.fp8_dtype", dtype=family.dtype)
        elif not _torchao():
            why = note("lever.no_torchao")
        reports.append(LeverReport(lever="quantize", value="fp8", applied=why is None, reason=why))
        used["quantize"] = "fp8" if why is None else "none"
    if knobs.compile:
        why = None
        cache_asked = knobs.step_cache != "none" and "step_cache" in explicit
        if not family.pipeline:
            why = note("lever.no_denoiser")
        elif not gpu:
            why = note("lever.needs_gpu", lever="compile", device=device)
        elif not compile_fits(strategy):
            why = note("lever.compile_offload", strategy=strategy)
        elif runs_once and "compile" not in explicit:
            why = note("lever.compile_single_run")
        elif cache_asked and "compile" not in explicit:  # the step cache asked on its own wins over speed's compile
            why = note("lever.compile_for_cache", step_cache=knobs.step_cache)
        reports.append(LeverReport(lever="compile", value="on", applied=why is None, reason=why))
        used["compile"] = why is None
    if knobs.step_cache != "none":
        why = None
        if not family.pipeline:
            why = note("lever.no_denoiser")
        elif not hasattr(denoiser_class(family), "enable_cache"):
            why = note("lever.no_cache_support", name=knobs.step_cache)
        elif "step_cache" not in explicit and (knobs.num_inference_steps or 0) < MIN_CACHE_STEPS:
            why = note("lever.step_cache_few_steps", steps=knobs.num_inference_steps)
        elif used["compile"]:  # the cache's hooks inside compiled blocks break the graph: compile wins
            why = note("lever.cache_with_compile")
        reports.append(LeverReport(lever="step_cache", value=knobs.step_cache, applied=why is None, reason=why))
        used["step_cache"] = knobs.step_cache if why is None else "none"
    return used, reports


def fp8_here(device: str) -> bool:
    """Whether fp8 weights can be made on `device` (a CUDA GPU of compute 8.9+, torchao importable)."""
    return device.startswith("cuda") and _capability(device) >= FP8_CAPABILITY and _torchao()


@cache
def denoiser_class(family: Family):
    """The class of the family's denoiser (transformer or UNet), read from its pipeline's signature."""
    import typing

    hints = typing.get_type_hints(family.pipeline_class().__init__)
    return hints.get("transformer") or hints.get("unet")


def _capability(device: str) -> tuple[int, int]:
    import torch

    return torch.cuda.get_device_capability(torch.device(device))


@cache
def _torchao() -> bool:
    try:
        import torchao.quantization  # noqa: F401
    except Exception:  # an import error, or a torchao built for another torch
        return False
    return True


def denoisers(pipe) -> list:
    """The pipeline's denoisers: its transformer(s) or UNet."""
    return [m for m in (getattr(pipe, name, None) for name in ("transformer", "transformer_2", "unet")) if m is not None]


def to_fp8(pipe, device: str) -> None:
    """fp8 weights for the layers of the denoisers' blocks, made layer by layer on `device`: the GPU
    never holds the whole bf16 denoiser (the planner counts the fp8 weights only), before the rest is
    placed. Activations take one scale per row, bounded below: the pipelines pad prompts with rows of
    zeros, and a zero row's own scale of 0 made the whole video NaN (measured, bench/fp8_nan_probe.py).
    Embedders and the output projection stay bf16: small, and where most of fp8's error came from."""
    from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow, quantize_

    config = Float8DynamicActivationFloat8WeightConfig(granularity=PerRow(), activation_value_lb=FP8_SCALE_FLOOR)
    for module in denoisers(pipe):
        quantize_(module, config, filter_fn=_fp8_layer, device=device)
    log.info("denoiser blocks in fp8 (torchao, per-row scales)")


def compile_denoisers(pipe, cache_dir: Path | None) -> None:
    """Compile the denoisers' repeated blocks (a UNet, or a model without them, whole). The kernels
    go to `cache_dir` (inductor's and triton's caches, set through their environment variables when
    the process has not set them) so that the next start warms up in seconds, not minutes."""
    import torch

    if cache_dir is not None:
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir / "inductor"))
        os.environ.setdefault("TRITON_CACHE_DIR", str(cache_dir / "triton"))
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    for module in denoisers(pipe):
        if getattr(module, "_repeated_blocks", None):
            module.compile_repeated_blocks(fullgraph=True)
        else:  # a UNet (I2VGen-XL), or CogVideoX: the whole module
            module.compile(fullgraph=False)
    log.info("denoiser compiled (warm-up on the first run; kernels cached in %s)", cache_dir)


def tune_convolutions(pipe, compiled: bool) -> bool:
    """Let cuDNN time its convolution algorithms (`cudnn.benchmark`) for a compiled UNet only:
    I2VGen-XL compiled went from 0.173 to 0.162 s a step with it on the H100, at a one-time cost of
    seconds on each new shape. Off for everything else: the video VAEs' 3D convolutions could pick
    algorithms with workspaces the planner does not count. Returns the setting made."""
    import torch

    on = compiled and any("UNet" in type(module).__name__ for module in denoisers(pipe))
    torch.backends.cudnn.benchmark = on
    return on


FP8_SCALE_FLOOR = 1e-6  # the smallest activation maximum a row's scale is made from (zero rows: no 0/0)
BLOCK_LAYERS = re.compile(r"^(blocks|transformer_blocks|single_transformer_blocks)\.")  # the layers fp8 takes


def _fp8_layer(module, name: str) -> bool:
    """The layers fp8 takes: bf16 linear layers of the denoiser's blocks whose sizes fp8 matmuls
    accept (multiples of 16). diffusers keeps some small layers in float32 when it loads a model
    (Wan's time embedder), which torchao's fp8 refuses; those are outside the blocks anyway."""
    import torch

    return (isinstance(module, torch.nn.Linear) and module.weight.dtype == torch.bfloat16
            and bool(BLOCK_LAYERS.match(name)) and module.in_features % 16 == 0
            and module.out_features % 16 == 0)  # fmt: skip


def set_step_cache(pipe, name: str) -> str | None:
    """Turn the step cache `name` on (or off, "none") for the next run. Returns why it could not be
    used, or None."""
    import diffusers

    for module in denoisers(pipe):
        if getattr(module, "is_cache_enabled", False):
            module.disable_cache()
    if name == "none":
        return None
    config = getattr(diffusers, STEP_CACHES[name])()
    for module in denoisers(pipe):
        if not hasattr(module, "enable_cache"):
            return "no_cache_support"
        try:
            module.enable_cache(config)
        except (ValueError, TypeError, NotImplementedError, KeyError, IndexError, AttributeError) as exc:
            log.info("step cache %s not available for %s: %s", name, type(module).__name__, exc)
            for other in denoisers(pipe):
                if getattr(other, "is_cache_enabled", False):
                    other.disable_cache()
            return "no_cache_support"
    return None


def set_shift(pipe, shift: float | None) -> None:
    """Give the scheduler the turbo weights' shift (flow-matching schedulers call it shift or flow_shift)."""
    if shift is None:
        return
    config = dict(pipe.scheduler.config)
    key = "flow_shift" if "flow_shift" in config else "shift" if "shift" in config else None
    if key is None:
        log.warning("the scheduler %s has no shift: turbo's %.1f not set", type(pipe.scheduler).__name__, shift)
        return
    pipe.scheduler = type(pipe.scheduler).from_config(config, **{key: shift})
