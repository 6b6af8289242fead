"""LoRAs: find a LoRA's file, and keep a loaded pipeline's adapters in step with a request.

A LoRA is a local `.safetensors` file or `HUB_ID::FILE` (a file of a Hugging Face repository,
from the local cache, or downloaded where the hub is reachable). diffusers reads both the
diffusers/peft key format and, for Wan, the original-Wan and kohya/musubi formats
(`diffusion_model.blocks.N.self_attn.q.lora_down.weight` + `alpha`), converting them on load.

Adapters stay loaded between runs under a name made from the file and its modification time, so
switching LoRAs, or their weights, never reloads the base model; an adapter no request asks for
any more is deleted. Wan 2.2 A14B has two experts: a LoRA goes into both, with `weight` for the
first (high noise) and `weight_2` for the second (low noise). This module knows nothing about
requests beyond `LoraChoice`, nor about the engine.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from .errors import InvalidInput, ModelNotAvailable
from .request import LoraChoice

log = logging.getLogger(__name__)

SUFFIX = ".safetensors"
SECOND_EXPERT = "transformer_2"
_LOADED = "_i2v_adapters"  # on a pipeline: adapter name -> the components it was loaded into
_STATE = "_i2v_adapter_state"  # on a pipeline: the active adapters and their weights, last run
# What diffusers and peft raise for a LoRA whose layers or sizes are not the model's.
_MISMATCH = (ValueError, RuntimeError, KeyError, TypeError, AttributeError, IndexError)


def parse(text: str) -> LoraChoice:
    """`FILE[:WEIGHT[:WEIGHT2]]` or `HUB_ID::FILE[:WEIGHT[:WEIGHT2]]` -> a LoraChoice (FILE a .safetensors)."""
    tail, weights = text.strip(), []
    while len(weights) < 2:
        head, sep, last = tail.rpartition(":")
        if not sep or head.endswith(":") or not head:
            break
        try:
            weights.insert(0, float(last))
        except ValueError:
            break
        tail = head
    if not tail.lower().endswith(SUFFIX) or tail.startswith(":"):
        raise InvalidInput("lora.bad_spec", value=text)
    values = dict(zip(("weight", "weight_2"), weights))
    from pydantic import ValidationError

    try:
        return LoraChoice(source=tail, **values)
    except ValidationError:
        raise InvalidInput("lora.bad_spec", value=text) from None


def locate(choice: LoraChoice, folder: Path | None = None) -> Path:
    """The file of a LoRA: a local file, a file of that name in `folder` (the LoRA folder), or a hub
    file from the Hugging Face cache (downloaded where the hub is reachable)."""
    repo, sep, name = choice.source.partition("::")
    if sep:
        if folder is not None and (Path(folder) / Path(name).name).is_file():
            return Path(folder) / Path(name).name
        return _from_hub(repo.strip(), name.strip())
    path = Path(choice.source).expanduser()
    if not path.is_absolute() and folder is not None and (Path(folder) / path).is_file():
        path = Path(folder) / path
    if path.suffix.lower() != SUFFIX:
        raise InvalidInput("lora.not_safetensors", file=choice.name)
    if not path.is_file():
        raise InvalidInput("lora.missing", file=choice.name)
    return path.resolve()


def _from_hub(repo: str, name: str) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    if not repo or not name.lower().endswith(SUFFIX):
        raise InvalidInput("lora.bad_spec", value=f"{repo}::{name}")
    try:
        return Path(hf_hub_download(repo, name))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError):
        raise ModelNotAvailable("lora.hub_missing", repo=repo, file=name) from None


def adapter_name(path: Path) -> str:
    """A stable name for a file's adapter: a changed file gets a new one."""
    stat = path.stat()
    return "lora_" + hashlib.sha1(f"{path}:{stat.st_mtime_ns}:{stat.st_size}".encode()).hexdigest()[:12]


def takes_loras(pipeline_class) -> bool:
    """Whether a diffusers pipeline has a LoRA loader (Wan, LTX, CogVideoX have one in diffusers 0.42;
    HunyuanVideo 1.5, SVD and I2VGen-XL do not)."""
    return hasattr(pipeline_class, "load_lora_weights")


def loaded(pipe) -> dict[str, tuple[str, ...]]:
    return dict(getattr(pipe, _LOADED, {}))


def apply(pipe, model: str, choices: list[LoraChoice], files: list[Path]) -> bool:
    """Make `choices` (with their `files`) the pipeline's active adapters, at their weights: load the
    new ones, then delete the ones no longer asked for. A LoRA that does not fit the model is refused
    (InvalidInput naming the file and the model) and the pipeline keeps the adapters it had, at their
    weights. Returns whether anything changed (a compiled denoiser then compiles again)."""
    adapters = loaded(pipe)
    wanted = {}
    for choice, path in zip(choices, files):
        name = adapter_name(path)
        if name in wanted:  # the same file under two spellings (a name in the folder, a path, a hub file)
            raise InvalidInput("lora.duplicate", file=choice.name)
        wanted[name] = (choice, path)
    fresh = []
    try:
        for name, (choice, path) in wanted.items():
            if name not in adapters:
                adapters[name] = _load(pipe, model, name, choice, path)
                fresh.append(name)
    except InvalidInput:
        if fresh:  # what this call loaded goes; the adapters before it stay as they were
            pipe.delete_adapters(fresh)
        for name in fresh:
            adapters.pop(name)
        raise
    finally:
        setattr(pipe, _LOADED, adapters)
    stale = [name for name in adapters if name not in wanted]
    if stale:
        pipe.delete_adapters(stale)
        for name in stale:
            adapters.pop(name)  # the same dict the pipeline holds (set above)
    weights = {}
    for component in _components(pipe):
        names = [name for name in wanted if component in adapters[name]]
        if names:
            weights[component] = [_weight(wanted[name][0], component) for name in names]
            getattr(pipe, component).set_adapters(names, weights[component])
    state = (tuple(wanted), tuple(sorted(weights.items())))
    changed = state != getattr(pipe, _STATE, ((), ()))
    setattr(pipe, _STATE, state)
    if wanted:
        log.info("LoRAs: %s", ", ".join(f"{c.name} x{c.weight:g}" for c, _ in wanted.values()))
    return changed


def _components(pipe) -> list[str]:
    return [name for name in getattr(pipe, "_lora_loadable_modules", ()) if getattr(pipe, name, None) is not None
            and not name.startswith("text_encoder")]  # fmt: skip


def _weight(choice: LoraChoice, component: str) -> float:
    if component == SECOND_EXPERT and choice.weight_2 is not None:
        return choice.weight_2
    return choice.weight


def _load(pipe, model: str, name: str, choice: LoraChoice, path: Path) -> tuple[str, ...]:
    """Load one file as adapter `name` into every denoiser; on a mismatch, undo and refuse."""
    into = []
    try:
        pipe.load_lora_weights(str(path), adapter_name=name)
        into.append("transformer")
        if getattr(pipe, SECOND_EXPERT, None) is not None:
            pipe.load_lora_weights(str(path), adapter_name=name, load_into_transformer_2=True)
            into.append(SECOND_EXPERT)
    except _MISMATCH as exc:
        _forget(pipe, name)
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        log.warning("LoRA %s does not fit %s: %s", path.name, model, detail)
        raise InvalidInput("lora.mismatch", file=choice.name, model=model) from None
    except OSError:
        _forget(pipe, name)
        raise InvalidInput("lora.unreadable", file=choice.name) from None
    if not _has_adapter(pipe, name):  # nothing of the file matched a layer of the model
        _forget(pipe, name)
        raise InvalidInput("lora.mismatch", file=choice.name, model=model)
    return tuple(into)


def _has_adapter(pipe, name: str) -> bool:
    try:
        return any(name in names for names in pipe.get_list_adapters().values())
    except ValueError:
        return False


def _forget(pipe, name: str) -> None:
    """Remove whatever a failed load left of adapter `name`."""
    for component in _components(pipe):
        module = getattr(pipe, component)
        config = getattr(module, "peft_config", None) or {}
        if name in config:
            module.delete_adapters([name])


def fuse(pipe, model: str, files: list[Path]) -> None:
    """Merge LoRA files into the denoisers' weights for good (turbo's step-distilled LoRAs): one file
    for every denoiser, or one per denoiser in order (Wan 2.2 A14B's high- and low-noise experts).
    The adapters are removed after fusing, so the pipeline runs as a plain model."""
    components = _components(pipe)
    for index, component in enumerate(components):
        path = files[index] if index < len(files) else files[0]
        kwargs = {"load_into_transformer_2": True} if component == SECOND_EXPERT else {}
        try:
            pipe.load_lora_weights(str(path), adapter_name=f"fused_{index}", **kwargs)
        except _MISMATCH:
            raise InvalidInput("lora.mismatch", file=path.name, model=model) from None
    pipe.fuse_lora(components=components, lora_scale=1.0)
    pipe.unload_lora_weights()
    setattr(pipe, _LOADED, {})
