"""MP4 export: browser-playable H.264, exact frames and fps, metadata, never a half-written file."""

from __future__ import annotations

import subprocess

import imageio_ffmpeg
import numpy as np
import pytest

from i2v.errors import ExportFailed
from i2v.export import read_comment, read_mp4, remove_orphaned_partials, unique_video_path, write_mp4


def moving_frames(count=12, height=48, width=64):
    frames = np.zeros((count, height, width, 3), dtype=np.uint8)
    for i in range(count):
        frames[i, :, : (i + 1) * width // count] = (200, 80, 20)
    return frames


def stream_info(path) -> str:
    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True)
    return probe.stderr


def test_h264_yuv420p_with_exact_frames_and_fps(tmp_path):
    path = write_mp4(moving_frames(), tmp_path / "v.mp4", fps=12, metadata={"seed": 1})
    info = stream_info(path)
    assert "Video: h264" in info and "yuv420p" in info
    frames, meta = read_mp4(path)
    assert frames.shape == (12, 48, 64, 3)
    assert meta["fps"] == 12
    # Lossy, but close: the moving bar is where it was written.
    assert np.abs(frames.astype(int) - moving_frames().astype(int)).mean() < 6


def test_float_frames_are_accepted(tmp_path):
    path = write_mp4(moving_frames().astype(np.float32) / 255.0, tmp_path / "f.mp4", fps=8, metadata={})
    assert read_mp4(path)[0].shape == (12, 48, 64, 3)


def test_metadata_is_embedded_and_written_beside(tmp_path):
    metadata = {"prompt": "猫转头, \"quoted\" = ok; #not a comment", "seed": 42, "model": "camera"}
    path = write_mp4(moving_frames(), tmp_path / "m.mp4", fps=8, metadata=metadata)
    assert read_comment(path) == metadata
    import json

    assert json.loads(path.with_suffix(".json").read_text()) == metadata


def test_failed_export_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="even"):
        write_mp4(moving_frames(height=47), tmp_path / "odd.mp4", fps=8, metadata={})
    with pytest.raises(ValueError, match="fps 0"):
        write_mp4(moving_frames(), tmp_path / "still.mp4", fps=0, metadata={})
    # ffmpeg finishes, then the rename fails: the temporary file must go too.
    (tmp_path / "taken.mp4").mkdir()
    with pytest.raises(ExportFailed, match="could not write the video"):
        write_mp4(moving_frames(), tmp_path / "taken.mp4", fps=8, metadata={})
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert leftovers == []


def test_unique_names(tmp_path):
    names = {unique_video_path(tmp_path, "/models/My Model!", 7).name for _ in range(50)}
    assert len(names) == 50
    assert all(name.endswith(".mp4") and "My-Model" in name and "_s7_" in name for name in names)


def test_partials_of_a_dead_writer_are_removed_and_a_live_ones_kept(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = tmp_path / f".clip.mp4.{dead.pid}.0123abcd.part"
    older = tmp_path / ".clip.mp4.89abcdef.part"  # written before partial names carried their writer
    live = tmp_path / f".other.mp4.{__import__('os').getpid()}.4567cdef.part"
    video = tmp_path / "done.mp4"
    someone_elses = tmp_path / ".backup.20261121.part"  # not a video's: never ours to remove
    for path in (orphan, older, live, video, someone_elses):
        path.write_bytes(b"x")
    assert sorted(remove_orphaned_partials(tmp_path)) == sorted([orphan, older])
    assert live.exists() and video.exists() and someone_elses.exists()
