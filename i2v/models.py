"""Model families, read from configs/models.toml, and where a model's weights are.

A model is named either by a family id (weights from that family's hub id, looked up in the local
Hugging Face cache only) or by a local folder written by `save_pretrained` (family read from its
model_index.json). This module knows the families' rules; it never loads weights.
"""

from __future__ import annotations

import json
import tomllib
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .errors import InvalidInput, ModelNotAvailable

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
CAMERA = "camera"
# Key that `i2v make-tiny` (and anyone) may add to model_index.json to name the family outright.
FAMILY_MARKER = "_i2v_family"


class Family(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    label: str
    pipeline: str
    hub_id: str
    dtype: Literal["bfloat16", "float16", "float32"]
    size_multiple: int = Field(ge=1)
    frame_step: int = Field(ge=1)
    frame_offset: int = Field(ge=0)
    max_frames: int = Field(ge=1)
    min_frames: int = Field(1, ge=1)
    size_rule: Literal["multiple", "fixed", "bucket"]
    fixed_size: tuple[int, int] | None = None
    height: int
    width: int
    num_frames: int
    fps: int
    num_inference_steps: int
    guidance_scale: float
    end_frame: bool
    text_prompt: bool
    tiny: str
    vae_tiling: bool = True

    @property
    def frame_rule(self) -> str:
        if self.frame_step == 1:
            return "any count"
        return f"{self.frame_step}n+{self.frame_offset}"

    def pipeline_class(self):
        import diffusers

        return getattr(diffusers, self.pipeline)


class CameraDefaults(BaseModel):
    """The camera engine's size rule and defaults (the [camera] table)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str
    size_multiple: int = Field(ge=1)
    max_frames: int = Field(ge=1)
    min_frames: int = Field(1, ge=1)
    height: int
    width: int
    num_frames: int
    fps: int


@cache
def _read_config(path: Path = CONFIG_DIR / "models.toml") -> dict:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    unknown = set(data) - {"families", "camera"}
    if unknown:
        raise ValueError(f"{path}: unknown top-level keys {sorted(unknown)}")
    return data


@cache
def load_families() -> dict[str, Family]:
    return {fid: Family(id=fid, **entry) for fid, entry in _read_config()["families"].items()}


@cache
def camera_defaults() -> CameraDefaults:
    return CameraDefaults(**_read_config()["camera"])


def get_family(family_id: str) -> Family:
    families = load_families()
    if family_id not in families:
        raise InvalidInput("model.unknown", model=family_id, known=", ".join([CAMERA, *families]))
    return families[family_id]


class ModelSource(BaseModel):
    """Where one model's weights are: a family plus a hub id or a local folder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    family: Family
    location: str  # hub id or absolute folder path
    local: bool

    @property
    def name(self) -> str:
        return self.location if self.local else self.family.id


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
    class_name = index.get("_class_name")
    candidates = [f for f in load_families().values() if f.pipeline == class_name]
    if class_name == "WanPipeline":  # Wan 2.2 TI2V 5B ships as a text-to-video pipeline that also takes a photo
        candidates = [get_family("wan2.2-ti2v-5b")]
    if len(candidates) > 1 and class_name == "WanImageToVideoPipeline":
        candidates = [_wan_family(folder, index)]
    if not candidates:
        raise InvalidInput("model.folder_unsupported", folder=str(folder), pipeline=class_name)
    return candidates[0]


def _wan_family(folder: Path, index: dict) -> Family:
    if (index.get("transformer_2") or [None])[0] is not None:
        return get_family("wan2.2-i2v-a14b")
    if index.get("expand_timesteps"):
        return get_family("wan2.2-ti2v-5b")
    return get_family("wan2.1-i2v-14b-720p" if "720" in folder.name else "wan2.1-i2v-14b-480p")


def resolve(model: str) -> ModelSource:
    """A family id or a local folder -> where its weights are. Does not check that they exist."""
    path = Path(model).expanduser()
    if model not in load_families() and (path.is_dir() or "/" in model and path.exists()):
        folder = path.resolve()
        return ModelSource(family=family_of_folder(folder), location=str(folder), local=True)
    if model not in load_families() and ("/" in model or model.startswith(".")):
        raise InvalidInput("model.folder_missing", folder=model)
    family = get_family(model)
    return ModelSource(family=family, location=family.hub_id, local=False)


def weights_present(source: ModelSource) -> bool:
    """True when the weights can be loaded without a download."""
    if source.local:
        return (Path(source.location) / "model_index.json").is_file()
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(source.location, "model_index.json")
    return isinstance(found, str)


def missing_weights(source: ModelSource) -> ModelNotAvailable:
    """The error for weights that are neither cached nor downloadable: which model, and how to get them."""
    return ModelNotAvailable("model.weights_missing", family=source.family.id, label=source.family.label,
                             hub_id=source.location)  # fmt: skip
