"""Frames -> a browser-playable H.264 MP4 with the request embedded, written atomically.

The video goes to a hidden temporary file beside its target and is renamed into place only when
ffmpeg has finished, so a reader never sees half a file; the same holds for the JSON written
beside it. This module knows nothing about models: it takes frames and a metadata dict.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from datetime import datetime
from pathlib import Path

import imageio_ffmpeg
import numpy as np

CRF = 18  # visually lossless for generated video; files stay a few MB for a few seconds at 720p


def unique_video_path(directory: Path, model: str, seed: int) -> Path:
    """A new file name in `directory` that no other job can take: time, model, seed and a random tag."""
    stamp = datetime.now().strftime("%Y%m%d_%H%M%S")
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(model).name)[:40].strip("-.") or "model"
    return directory / f"{stamp}_{slug}_s{seed}_{uuid.uuid4().hex[:8]}.mp4"


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) floats in [0, 1] or uint8 -> contiguous uint8."""
    if frames.dtype != np.uint8:
        frames = np.clip(np.rint(frames * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(frames)


def write_mp4(frames: np.ndarray, path: Path, fps: int, metadata: dict) -> Path:
    """Write (T, H, W, 3) frames to `path` as H.264 yuv420p, with `metadata` as the MP4 comment and beside it as JSON."""
    frames = to_uint8(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3), got {frames.shape}")
    count, height, width, _ = frames.shape
    if not 1 <= fps <= 240:
        raise ValueError(f"fps {fps} is out of range: 1 to 240")
    if height % 2 or width % 2:
        raise ValueError(f"H.264 yuv420p needs even sizes, got {width}x{height}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    text = json.dumps(metadata, ensure_ascii=False, sort_keys=True, default=str)
    try:
        writer = imageio_ffmpeg.write_frames(
            str(partial),
            (width, height),
            fps=fps,
            codec="libx264",
            pix_fmt_out="yuv420p",
            quality=None,
            macro_block_size=1,
            ffmpeg_log_level="error",
            output_params=[
                "-crf", str(CRF),
                "-preset", "medium",
                "-movflags", "+faststart+use_metadata_tags",
                "-metadata", f"comment={text}",
                "-metadata", "title=i2v studio",
                "-f", "mp4",
            ],
        )  # fmt: skip
        writer.send(None)
        for frame in frames:
            writer.send(frame)
        writer.close()
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    write_json(path.with_suffix(".json"), metadata)
    return path


def write_json(path: Path, data: dict) -> Path:
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        partial.write_text(json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True, default=str) + "\n")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def read_mp4(path: Path) -> tuple[np.ndarray, dict]:
    """Decode a video back: frames as (T, H, W, 3) uint8 and ffmpeg's metadata (fps, size, ...)."""
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    width, height = meta["size"]
    frames = [np.frombuffer(raw, np.uint8).reshape(height, width, 3) for raw in reader]
    return np.stack(frames), meta


def read_comment(path: Path) -> dict:
    """The JSON embedded as the MP4's comment tag."""
    out = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path), "-f", "ffmetadata", "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in out.splitlines():
        if line.startswith("comment="):
            return json.loads(_unescape_ffmetadata(line[len("comment=") :]))
    raise ValueError(f"{path} has no comment metadata")


def _unescape_ffmetadata(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)
