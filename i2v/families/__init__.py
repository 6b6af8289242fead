"""Model families, one room each: the rules of every family are data (configs/models.toml), and what
a family does differently is code in its room (this folder, one file per family or close group).

A model is named by a family id (weights from that family's hub id, looked up in the local Hugging
Face cache only), by a local folder written by `save_pretrained` (its family read from its
model_index.json: the first family whose room `claims` it), or "camera" (the camera engine, a
family without weights). This package knows the families; it never loads weights.
"""

from __future__ import annotations

import importlib
import json
import tomllib
from functools import cache
from pathlib import Path

from ..errors import InvalidInput, ModelNotAvailable
from .base import FAMILY_MARKER, Family, ModelSource

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
CAMERA = "camera"


@cache
def _read_config(path: Path = CONFIG_DIR / "models.toml") -> dict:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    unknown = set(data) - {"families"}
    if unknown:
        raise ValueError(f"{path}: unknown top-level keys {sorted(unknown)}")
    return data


def _room(name: str) -> type[Family]:
    module, _, cls = name.partition(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


@cache
def all_families() -> dict[str, Family]:
    """Every family, the camera engine included, in the order of configs/models.toml."""
    return {fid: _room(entry["room"])(id=fid, **entry) for fid, entry in _read_config()["families"].items()}


@cache
def load_families() -> dict[str, Family]:
    """The families that run a diffusers pipeline (all but the camera engine)."""
    return {fid: family for fid, family in all_families().items() if family.pipeline}


def get_family(family_id: str) -> Family:
    families = all_families()
    if family_id not in families:
        raise InvalidInput("model.unknown", model=family_id, known=", ".join(families))
    return families[family_id]


def family_of_folder(folder: Path) -> Family:
    """Read the family of a `save_pretrained` folder from its model_index.json."""
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise InvalidInput("model.folder_not_pipeline", folder=str(folder))
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInput("model.folder_unreadable", folder=str(folder), detail=str(exc)) from None
    if FAMILY_MARKER in index:
        return get_family(index[FAMILY_MARKER])
    for family in load_families().values():
        if family.claims(index, folder):
            return family
    raise InvalidInput("model.folder_unsupported", folder=str(folder), pipeline=index.get("_class_name"))


def resolve(model: str) -> ModelSource:
    """A family id, "camera" or a local folder -> where its weights are. Does not check that they exist."""
    families = all_families()
    path = Path(model).expanduser()
    if model not in families and (path.is_dir() or "/" in model and path.exists()):
        folder = path.resolve()
        return ModelSource(family=family_of_folder(folder), location=str(folder), local=True)
    if model not in families and ("/" in model or model.startswith(".")):
        raise InvalidInput("model.folder_missing", folder=model)
    family = get_family(model)
    return ModelSource(family=family, location=family.hub_id, local=False)


def weights_present(source: ModelSource) -> bool:
    """True when the weights can be loaded without a download (a family without weights has them)."""
    if source.location is None:
        return True
    if source.local:
        return (Path(source.location) / "model_index.json").is_file()
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(source.location, "model_index.json")
    return isinstance(found, str)


def missing_weights(source: ModelSource) -> ModelNotAvailable:
    """The error for weights that are neither cached nor downloadable: which model, and how to get them."""
    return ModelNotAvailable("model.weights_missing", family=source.family.id, label=source.family.label,
                             hub_id=source.location)  # fmt: skip


__all__ = ["CAMERA", "CONFIG_DIR", "FAMILY_MARKER", "Family", "ModelSource", "all_families", "family_of_folder",
           "get_family", "load_families", "missing_weights", "resolve", "weights_present"]  # fmt: skip
