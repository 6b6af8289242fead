"""What a caller asks the engine for, and what it gets back.

Both are pydantic models that reject unknown fields and bound every number, so a request that
reaches the engine is already sane; the family-specific rules (multiples, frame counts) are checked
by the engine, which knows the model. Argument names are diffusers' own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from messages import Message

# The camera vocabulary shared with the prompt refiner; the camera engine renders every one.
CameraMotion = Literal[
    "static",
    "pan_left",
    "pan_right",
    "tilt_up",
    "tilt_down",
    "zoom_in",
    "zoom_out",
    "dolly_in",
    "dolly_out",
    "orbit_left",
    "orbit_right",
    "crane_up",
    "crane_down",
    "tracking",
    "handheld",
]
CAMERA_MOTIONS: tuple[str, ...] = CameraMotion.__args__  # type: ignore[attr-defined]

MAX_SEED = 2**32 - 1
Fit = Literal["crop", "pad"]
Strategy = Literal["none", "model", "group", "sequential"]  # where the weights live, fastest first
STRATEGIES: tuple[str, ...] = Strategy.__args__  # type: ignore[attr-defined]
MemoryStrategy = Literal["auto", "none", "model", "group", "sequential"]  # auto: the planner picks


class GenerationRequest(BaseModel):
    """One video to make. A field left at None takes the model family's default."""

    model_config = ConfigDict(extra="forbid")

    image: Path
    prompt: str = Field("", max_length=4000)
    negative_prompt: str = Field("", max_length=4000)
    model: str = Field("camera", min_length=1, max_length=1000, description="family id, 'camera', or a local folder")
    height: int | None = Field(None, ge=16, le=2160)
    width: int | None = Field(None, ge=16, le=3840)
    num_frames: int | None = Field(None, ge=1, le=1024)
    fps: int | None = Field(None, ge=1, le=60)
    num_inference_steps: int | None = Field(None, ge=1, le=200)
    guidance_scale: float | None = Field(None, ge=0.0, le=30.0)
    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="None picks a random seed; the result reports it")
    camera_motion: CameraMotion = "static"
    last_image: Path | None = None
    fit: Fit = Field("crop", description="how the photo meets the video's aspect: center crop, or pad with black")
    memory_strategy: MemoryStrategy = Field(
        "auto", description="none: all on the GPU; model / group / sequential CPU offload; auto: the engine's default"
    )
    vae_tiling: bool = Field(False, description="decode (and encode) the video in tiles: less memory, a bit slower")


class VideoResult(BaseModel):
    """A finished video: where it is and exactly how it was made."""

    model_config = ConfigDict(extra="forbid")

    path: Path
    metadata_path: Path
    model: str
    family: str
    engine: Literal["diffusers", "camera"]
    label: str
    preview: bool = Field(description="True for the camera engine: a camera-motion preview, not a generated video")
    prompt: str
    negative_prompt: str
    height: int
    width: int
    num_frames: int
    fps: int
    num_inference_steps: int
    guidance_scale: float
    seed: int
    camera_motion: str
    fit: Fit
    seconds: float
    device: str
    memory_strategy: str = "none"
    vae_tiling: bool = False
    adjustments: list[Message] = Field(default_factory=list, description="values the engine changed, and why")
