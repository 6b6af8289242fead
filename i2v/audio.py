"""A video's sound: an `Audio` value (float32 samples, channels x n, at a rate), read from a soundtrack
file a person gives, and laid under a video of a given length.

A soundtrack is decoded by the ffmpeg binary `imageio-ffmpeg` ships (any format it reads: WAV, MP3,
AAC/M4A, OGG, FLAC, or a video's sound track) to 48 kHz stereo, and only as far as the video needs:
a longer file is trimmed, a shorter one looped, each said in the result. The checks say what is wrong
with a file before any model loads: missing, empty, larger than MAX_SOUNDTRACK_MB, or holding no sound
ffmpeg can read. There is no limit on a soundtrack's length, as only the video's seconds are decoded.
Sound a model made with its frames (LTX-2) is trimmed or padded with silence to the frame instead: it
differs from the video's length by a few hundredths of a second, never by a loop's worth.

Writing the sound into the MP4 (AAC) and decoding it back are i2v/export.py's. This module knows
nothing about models or requests.
"""

from __future__ import annotations

import logging
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from messages import Message, note

from .errors import InvalidInput

log = logging.getLogger(__name__)

SOUNDTRACK_RATE = 48_000  # a soundtrack is decoded to 48 kHz stereo, whatever its own rate: AAC's usual rate
SOUNDTRACK_CHANNELS = 2
MAX_SOUNDTRACK_MB = 200  # a 10-minute lossless stereo WAV at 48 kHz is 110 MB; more is no soundtrack for a clip
DECODE_MARGIN_S = 0.5  # decoded past the video's planned length, to tell a longer file from one that just fits


@dataclass(frozen=True, eq=False)
class Audio:
    """Sound: `samples` (channels, n) float32 in [-1, 1], `rate` samples a second."""

    samples: np.ndarray
    rate: int

    def __post_init__(self):
        samples = np.asarray(self.samples, dtype=np.float32)
        if samples.ndim == 1:
            samples = samples[None, :]
        if samples.ndim != 2 or not 1 <= samples.shape[0] <= 8:
            raise ValueError(f"audio samples must be (channels, n), got {samples.shape}")
        if not 1_000 <= self.rate <= 192_000:
            raise ValueError(f"audio rate {self.rate} is out of range: 1000 to 192000 Hz")
        object.__setattr__(self, "samples", np.ascontiguousarray(samples))

    @property
    def channels(self) -> int:
        return self.samples.shape[0]

    @property
    def length(self) -> int:
        """Samples per channel."""
        return self.samples.shape[1]

    @property
    def seconds(self) -> float:
        return self.length / self.rate

    def fitted(self, seconds: float, loop: bool) -> Audio:
        """This sound made exactly `seconds` long (to the sample): cut where it is longer; where it is
        shorter, repeated from its start (`loop`) or followed by silence."""
        wanted = max(0, round(seconds * self.rate))
        samples = self.samples
        if samples.shape[1] < wanted and samples.shape[1] > 0:
            if loop:
                samples = np.tile(samples, (1, -(-wanted // samples.shape[1])))
            else:
                samples = np.pad(samples, ((0, 0), (0, wanted - samples.shape[1])))
        return Audio(samples[:, :wanted], self.rate)


def lay_under(audio: Audio, seconds: float, soundtrack: str | None) -> tuple[Audio, list[Message]]:
    """`audio` made as long as a video of `seconds`: a soundtrack (the file `soundtrack`, decoded by
    `read_soundtrack`: whole when it was shorter than the video) looped or trimmed, said in the notes;
    the model's own sound trimmed or padded with silence to the video's last frame."""
    notes: list[Message] = []
    if soundtrack is None:
        return audio.fitted(seconds, loop=False), notes
    one_sample = 1 / audio.rate
    if audio.seconds < seconds - one_sample:
        notes.append(note("sound.looped", file=soundtrack, seconds=audio.seconds, video_seconds=seconds,
                          times=round(seconds / audio.seconds, 1)))  # fmt: skip
    elif audio.seconds > seconds + one_sample:
        notes.append(note("sound.trimmed", file=soundtrack, video_seconds=seconds))
    for said in notes:
        log.info("%s", said)
    return audio.fitted(seconds, loop=True), notes


def read_soundtrack(path: Path, seconds: float) -> Audio:
    """The first `seconds` (and a little more) of the sound in the file at `path`, 48 kHz stereo, or
    an InvalidInput that names the file (never its folder) and what is wrong with it."""
    from .export import _ffmpeg_exe

    path = Path(path)
    name = path.name
    if not path.is_file():
        raise InvalidInput("sound.missing", file=name)
    size = path.stat().st_size
    if size == 0:
        raise InvalidInput("sound.empty", file=name)
    if size > MAX_SOUNDTRACK_MB * 2**20:
        raise InvalidInput("sound.too_big", file=name, mb=size / 2**20, limit_mb=MAX_SOUNDTRACK_MB)
    command = [
        _ffmpeg_exe(), "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error",
        # A file name only (no URL, no other protocol), and nothing a playlist inside it points to
        "-protocol_whitelist", "file,pipe", "-i", f"file:{path.resolve()}",
        "-map", "0:a:0", "-vn", "-ac", str(SOUNDTRACK_CHANNELS), "-ar", str(SOUNDTRACK_RATE),
        "-t", f"{seconds + DECODE_MARGIN_S:.3f}", "-f", "f32le", "-acodec", "pcm_f32le", "-",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, check=False)
    if done.returncode != 0:
        said = done.stderr.decode("utf-8", "replace").strip().splitlines()
        log.info("ffmpeg could not read soundtrack %s: %s", name, said[-1] if said else done.returncode)
        raise InvalidInput("sound.not_audio", file=name)
    samples = np.frombuffer(done.stdout, dtype="<f4")
    samples = samples[: len(samples) // SOUNDTRACK_CHANNELS * SOUNDTRACK_CHANNELS]
    if samples.size == 0:
        raise InvalidInput("sound.empty", file=name)
    return Audio(samples.reshape(-1, SOUNDTRACK_CHANNELS).T, SOUNDTRACK_RATE)


def stream_info(stderr: str) -> tuple[int, int] | None:
    """(rate, channels) of the first audio stream in ffmpeg's description of its input, or None."""
    found = re.search(r"Stream #\d+:\d+.*?: Audio: .*?, (\d+) Hz, ([^,\n]+)", stderr)
    if found is None:
        return None
    layout = found.group(2).strip()
    counted = re.match(r"(\d+) channels", layout)
    channels = {"mono": 1, "stereo": 2}.get(layout, int(counted.group(1)) if counted else 2)
    return int(found.group(1)), channels
