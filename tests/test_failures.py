"""What happens when the machine fails under a job: a full disk, a process killed while encoding.

A full disk is real: a 64 KiB tmpfs mounted in a private mount namespace (`unshare`, no root
needed). A kill is a real `kill -9`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from i2v.engine import VideoEngine

SMALL_DISK = "64k"


def on_a_full_disk(directory, *command) -> subprocess.CompletedProcess:
    """Run `command` with `directory` on a tiny tmpfs of its own; print what is left there after."""
    script = (
        'mount -t tmpfs -o size=' + SMALL_DISK + ' tmpfs "$0" || exit 99; "$@"; echo "exit=$?"; '
        'echo "left:$(ls -A "$0" | tr "\\n" " ")"'
    )
    directory.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, str(directory),
                           *map(str, command)], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert "exit=" in done.stdout, f"could not make a small disk: {done.stderr}"
    return done


def exit_and_left(done) -> tuple[int, str]:
    lines = done.stdout.splitlines()
    code = int(next(line for line in lines if line.startswith("exit="))[5:])
    left = next(line for line in lines if line.startswith("left:"))[5:].strip()
    return code, left


def test_disk_full_in_the_cli_is_one_line_exit_1_and_leaves_nothing(tmp_path, chelsea):
    out = tmp_path / "out"
    done = on_a_full_disk(out, sys.executable, "-m", "i2v.cli", "generate", "--image", chelsea, "--frames", 48,
                          "--height", 512, "--width", 512, "--camera", "pan_left", "--seed", 1, "--out", out / "clip.mp4")
    code, left = exit_and_left(done)
    assert code == 1, done.stderr
    said = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("rendering")]
    assert len(said) == 1 and said[0].startswith(f"i2v: error: not enough space in {out}"), done.stderr
    assert "Traceback" not in done.stderr
    assert "FFMPEG" not in done.stderr and "Broken pipe" not in done.stderr
    assert left == ""  # nothing under the final name, no partial file


ENGINE = """
import sys
from i2v.engine import VideoEngine
from i2v.errors import DiskFull
from i2v.request import GenerationRequest

try:
    VideoEngine(sys.argv[1]).generate(GenerationRequest(image=sys.argv[2], model="camera", height=512, width=512,
                                                        num_frames=48, camera_motion="pan_left", seed=1))
except DiskFull as exc:
    print("error:", exc.code, exc.message.params["directory"])
"""


def test_disk_full_in_the_engine_is_a_disk_full_error(tmp_path, chelsea):
    out = tmp_path / "out"
    done = on_a_full_disk(out, sys.executable, "-c", ENGINE, out, chelsea)
    assert f"error: export.disk_full {out}" in done.stdout, done.stdout + done.stderr
    assert exit_and_left(done) == (0, "")


def test_killed_while_encoding_leaves_no_encoder_and_the_next_start_cleans_up(tmp_path, chelsea):
    out = tmp_path / "out"
    # 121 frames of 720p keep the encoder busy for seconds (the loop below looks every 50 ms); the frames
    # are rendered before it starts, and that render is most of this test's time: 241 took twice as long.
    process = subprocess.Popen(
        [sys.executable, "-m", "i2v.cli", "generate", "--image", str(chelsea), "--frames", "121", "--height", "720",
         "--width", "1280", "--camera", "orbit_left", "--seed", "1", "--out", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        encoders = []
        while time.monotonic() < deadline and process.poll() is None:
            partials = list(out.glob(".*.part")) if out.exists() else []
            encoders = [c for c in psutil.Process(process.pid).children(recursive=True) if "ffmpeg" in c.name()]
            if partials and encoders:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the encoder never started (or the job ended first)")
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        gone, alive = psutil.wait_procs(encoders, timeout=10)
        assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], "ffmpeg outlived the killed process"
    finally:
        if process.poll() is None:
            process.kill()
    left = list(out.glob(".*.part"))
    assert left, "the kill should have left the partial file this test is about"
    # Killed with its parent, not left to finish on its own: the encoder never wrote the MP4's index.
    assert b"moov" not in left[0].read_bytes(), "ffmpeg went on encoding after its parent was killed"
    VideoEngine(out)  # an engine starting on the folder removes what a dead process left
    assert list(out.iterdir()) == []
