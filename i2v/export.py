"""Frames (and their sound, if any) -> a browser-playable H.264 MP4 with an AAC sound track and the
request embedded, written atomically.

The video and its JSON go to hidden partial files beside their targets and are renamed into place
only when both are whole, so a reader never sees half a file and a failure (a full disk, a killed
encoder) leaves nothing under a final name. ffmpeg (the binary `imageio-ffmpeg` ships) runs as our
child and dies with us; a partial file left by a process that was killed is removed by
`remove_orphaned_partials`, which the engine calls when it starts: only those of this host's dead
processes (an output folder several boxes mount holds other hosts' live ones). This module knows
nothing about models: it takes frames, a metadata dict and, for a video with sound, an `Audio`
(i2v/audio.py) as long as the video. `read_mp4`, `read_audio` and `read_comment` decode a video
back, for tests and checks.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import DiskFull, ExportFailed

if TYPE_CHECKING:
    from .audio import Audio

log = logging.getLogger(__name__)

CRF = 18  # visually lossless for generated video; files stay a few MB for a few seconds at 720p
AAC_KBPS_PER_CHANNEL = 96  # 192 kb/s stereo: transparent for generated sound and most soundtracks
# Hidden partial files: ".<final name>.<host>-<pid of the writer>.<random>.part" (the host: an output
# folder several boxes mount holds every box's); older names: ".<final name>.<pid>.<random>.part" and,
# before pids were in the name, ".<final name>.<random>.part". Only those of a video or its JSON are ours.
_PARTIAL = re.compile(r"^\..+?\.(?:mp4|json)\.(?:(?:(?P<host>[A-Za-z0-9.-]+)-)?(?P<pid>\d+)\.)?[0-9a-f]{8}\.part$")


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


def _partial(path: Path) -> Path:
    return path.with_name(f".{path.name}.{_host()}-{os.getpid()}.{uuid.uuid4().hex[:8]}.part")


def _host() -> str:
    """This machine's name as a partial file carries it: letters, digits, dots and dashes only."""
    return re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "host"


def write_mp4(frames: np.ndarray, path: Path, fps: int, metadata: dict, audio: Audio | None = None) -> Path:
    """Write (T, H, W, 3) frames to `path` as H.264 yuv420p, with `audio` (already as long as the
    video: i2v/audio.py's `lay_under`) as its AAC sound track, and `metadata` as the MP4 comment and
    beside it as JSON. Both appear together or not at all; a full disk raises DiskFull."""
    frames = to_uint8(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3), got {frames.shape}")
    _, height, width, _ = frames.shape
    if not 1 <= fps <= 240:
        raise ValueError(f"fps {fps} is out of range: 1 to 240")
    if height % 2 or width % 2:
        raise ValueError(f"H.264 yuv420p needs even sizes, got {width}x{height}")
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _failure(exc, path.parent) from None
    text = json.dumps(metadata, ensure_ascii=False, sort_keys=True, default=str)
    video, sidecar = _partial(path), _partial(path.with_suffix(".json"))
    sound = _partial(path)  # the raw samples ffmpeg reads, beside the video (a partial file: cleaned up alike)
    try:
        if audio is not None:
            with open(sound, "wb") as handle:
                handle.write(np.ascontiguousarray(audio.samples.T, dtype="<f4").tobytes())
        _encode(frames, video, fps, text, (sound, audio.rate, audio.channels) if audio is not None else None)
        _write_text(sidecar, json.dumps(metadata, ensure_ascii=False, indent=2, sort_keys=True, default=str) + "\n")
        # The video first: the JSON is in its comment too, so a kill between the two renames leaves
        # a whole video, never a JSON without one.
        os.replace(video, path)
        try:
            os.replace(sidecar, path.with_suffix(".json"))
        except OSError:
            path.unlink(missing_ok=True)  # both, or neither
            raise
    except OSError as exc:
        raise _failure(exc, path.parent) from None
    finally:
        video.unlink(missing_ok=True)
        sidecar.unlink(missing_ok=True)
        sound.unlink(missing_ok=True)
    return path


def remove_orphaned_partials(directory: Path) -> list[Path]:
    """Remove the partial files in `directory` whose writer is gone (a killed process leaves them);
    those of a live process, this one's included, stay, and another host's are never touched (its
    pids mean nothing here: the folder is shared by several boxes). A name without a host (older)
    is this host's. Returns what was removed."""
    removed = []
    if not Path(directory).is_dir():
        return removed
    here = _host()
    for candidate in Path(directory).iterdir():
        match = _PARTIAL.match(candidate.name)
        if not match or not candidate.is_file():
            continue
        host, pid = match.group("host"), match.group("pid")
        if host is not None and host != here:
            continue
        if pid is not None and _alive(int(pid)):
            continue
        try:
            candidate.unlink()
            removed.append(candidate)
        except OSError as exc:  # another process cleaned it first, or it is not ours to remove
            log.debug("could not remove %s: %s", candidate, exc)
    if removed:
        log.info("removed %d partial file(s) left by a stopped process in %s", len(removed), directory)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


# ---------------------------------------------------------------------- ffmpeg
def _encode(frames: np.ndarray, target: Path, fps: int, comment: str,
            sound: tuple[Path, int, int] | None = None) -> None:  # fmt: skip
    """`frames` through ffmpeg's stdin into an MP4 at `target`; `sound`, (a file of float32 samples,
    interleaved, its rate, its channels), becomes its AAC sound track."""
    count, height, width, _ = frames.shape
    if sound is None:
        audio_in, audio_out = [], ["-an"]
    else:
        raw, rate, channels = sound
        audio_in = ["-f", "f32le", "-ar", str(rate), "-ac", str(channels), "-i", str(raw)]
        audio_out = ["-map", "0:v:0", "-map", "1:a:0", "-acodec", "aac", "-b:a", f"{AAC_KBPS_PER_CHANNEL * channels}k"]
    command = [
        _ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error",
        "-f", "rawvideo", "-vcodec", "rawvideo", "-s", f"{width}x{height}", "-pix_fmt", "rgb24", "-r", str(fps),
        "-i", "-", *audio_in, *audio_out,
        "-vcodec", "libx264", "-pix_fmt", "yuv420p", "-crf", str(CRF), "-preset", "medium",
        "-movflags", "+faststart+use_metadata_tags", "-metadata", f"comment={comment}",
        "-metadata", "title=i2v studio", "-f", "mp4", str(target),
    ]  # fmt: skip
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors,
                                   preexec_fn=_die_with_parent())  # fmt: skip
        broken = False
        try:
            for frame in frames:
                process.stdin.write(frame.tobytes())
        except BrokenPipeError:
            broken = True  # ffmpeg stopped reading: its own message says why
        finally:
            try:
                process.stdin.close()
            except BrokenPipeError:
                broken = True
            if sys.exc_info()[0] is not None and not broken:  # interrupted (Ctrl-C): ffmpeg goes too
                process.kill()
            code = process.wait()
        if code != 0 or broken:
            errors.seek(0)
            said = errors.read().decode("utf-8", "replace").strip().splitlines()
            detail = said[-1] if said else f"ffmpeg exited with {code}"
            if any("No space left" in line for line in said):
                raise OSError(errno.ENOSPC, "No space left on device")
            raise ExportFailed("export.ffmpeg", detail=detail[:300])
    log.debug("encoded %d frames of %dx%d into %s", count, width, height, target.name)


def _ffmpeg_exe() -> str:
    import imageio_ffmpeg  # imported when a video is written: benches on a GPU machine without it stub the writer

    return imageio_ffmpeg.get_ffmpeg_exe()


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _failure(exc: OSError, directory: Path) -> Exception:
    """The user's words for a failed write: a full disk says where and how much is free."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        try:
            free = shutil.disk_usage(directory).free / 2**20
        except OSError:
            free = 0.0
        return DiskFull("export.disk_full", directory=str(directory), free_mb=round(free, 1))
    return ExportFailed("export.write", directory=str(directory), detail=exc.strerror or str(exc))


def _die_with_parent():
    """A preexec_fn that makes the child get SIGKILL when this process dies (Linux), so a killed
    app never leaves an encoder running; elsewhere None. Python warns that a preexec_fn may deadlock
    in a threaded process (the app is one) if it allocates or takes a lock between fork and exec;
    this one only calls prctl, looked up before the fork."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    PR_SET_PDEATHSIG = 1

    def set_death_signal() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)

    return set_death_signal


# ---------------------------------------------------------------------- reading back
def read_mp4(path: Path) -> tuple[np.ndarray, dict]:
    """Decode a video back: frames as (T, H, W, 3) uint8 and ffmpeg's metadata (fps, size, ...)."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    width, height = meta["size"]
    frames = [np.frombuffer(raw, np.uint8).reshape(height, width, 3) for raw in reader]
    return np.stack(frames), meta


def describe(path: Path, timeout: float = 60) -> str | None:
    """ffmpeg's description of the media file at `path` (its "Input #0" and "Stream #0:N" lines), or
    None when ffmpeg cannot open it as one (or takes longer than `timeout` seconds to say)."""
    try:
        said = subprocess.run([_ffmpeg_exe(), "-nostdin", "-hide_banner", "-i", f"file:{Path(path).resolve()}"],
                              capture_output=True, text=True, errors="replace", timeout=timeout).stderr  # fmt: skip
    except subprocess.TimeoutExpired:
        return None
    return said if re.search(r"^Input #0", said, re.MULTILINE) else None


def read_audio(path: Path) -> tuple[np.ndarray, int] | None:
    """Decode a video's (or any file's) first sound track back: (channels, n) float32 samples and
    their rate, or None when it has none."""
    exe, source = _ffmpeg_exe(), f"file:{Path(path).resolve()}"
    from .audio import stream_info

    info = stream_info(describe(path) or "")
    if info is None:
        return None
    rate, channels = info
    out = subprocess.run([exe, "-nostdin", "-hide_banner", "-loglevel", "error", "-i", source, "-map", "0:a:0",
                          "-ac", str(channels), "-f", "f32le", "-acodec", "pcm_f32le", "-"],
                         capture_output=True, check=True).stdout  # fmt: skip
    samples = np.frombuffer(out, dtype="<f4")
    return samples[: len(samples) // channels * channels].reshape(-1, channels).T.copy(), rate


def h264_round_trip(image: np.ndarray, crf: int) -> np.ndarray:
    """One (H, W, 3) uint8 picture through H.264 at `crf` (libx264, veryfast, yuv420p) and back: the
    compression a model trained on compressed video expects to see in its conditioning photo (LTX-2).
    Odd sides lose their last row or column, as the encoder needs even ones."""
    height, width = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
    image = np.ascontiguousarray(image[:height, :width])
    with tempfile.TemporaryDirectory(prefix="i2v-crf-") as folder:
        encoded = Path(folder) / "photo.mp4"
        subprocess.run([_ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "rawvideo",
                        "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", "1", "-i", "-", "-frames:v", "1",
                        "-vcodec", "libx264", "-preset", "veryfast", "-crf", str(crf), "-pix_fmt", "yuv420p",
                        str(encoded)], input=image.tobytes(), capture_output=True, check=True)  # fmt: skip
        decoded = subprocess.run([_ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(encoded),
                                  "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                                 capture_output=True, check=True).stdout  # fmt: skip
    return np.frombuffer(decoded, np.uint8).reshape(height, width, 3).copy()


def first_frame(path: Path) -> np.ndarray:
    """The video's first frame, (H, W, 3) uint8, decoding nothing more."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    try:
        meta = next(reader)
        width, height = meta["size"]
        return np.frombuffer(next(reader), np.uint8).reshape(height, width, 3).copy()
    finally:
        reader.close()


def read_comment(path: Path) -> dict:
    """The JSON embedded as the MP4's comment tag."""
    out = subprocess.run(
        [_ffmpeg_exe(), "-hide_banner", "-i", str(path), "-f", "ffmetadata", "-"],
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
