"""start_app.sh as a person runs it: installs (a no-op here), refuses a busy port, warns when
listening beyond localhost without auth, writes logs/app_*.log, prints the URL, serves the page."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request

from conftest import REPO
from llama import free_port


def start(*args, env=None):
    environment = {**os.environ, "I2V_MODEL": "camera", **(env or {})}
    return subprocess.Popen(
        ["bash", str(REPO / "start_app.sh"), *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env=environment, start_new_session=True,
    )  # fmt: skip


def test_busy_port_is_refused_with_a_clear_message():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = start("--port", str(port))
        output, _ = done.communicate(timeout=120)
    assert done.returncode == 1
    assert f"port {port} on 127.0.0.1 is in use" in output and "--port" in output


def test_bad_flags():
    done = start("--port", "abc")
    output, _ = done.communicate(timeout=30)
    assert done.returncode == 2 and "not a number" in output


def test_starts_logs_and_serves(tmp_path):
    port = free_port()
    before = set((REPO / "logs").glob("app_*.log"))
    process = start("--host", "0.0.0.0", "--port", str(port), env={"I2V_OUTPUT_DIR": str(tmp_path)})
    lines = []
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if "open http://" in line or process.poll() is not None:
                break
        output = "".join(lines)
        assert f"open http://localhost:{port}" in output, output
        assert "WARNING: listening on 0.0.0.0 without I2V_AUTH" in output
        for _ in range(50):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as page:
                    assert page.status == 200 and "i2v studio" in page.read().decode()
                    break
            except OSError:
                time.sleep(0.3)
        else:
            raise AssertionError("the page never answered")
        new_logs = set((REPO / "logs").glob("app_*.log")) - before
        assert len(new_logs) == 1
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        for log in set((REPO / "logs").glob("app_*.log")) - before:
            log.unlink()
