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


def time_wait_port() -> int:
    """A port with no listener but a closed connection in TIME_WAIT, as a stopped app leaves it."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    accepted.close()  # the server's side closes first: its end stays in TIME_WAIT for about a minute
    client.close()
    server.close()
    with socket.socket() as plain:  # what the old check did: a plain bind, refused over TIME_WAIT
        try:
            plain.bind(("127.0.0.1", port))
        except OSError:
            return port
    raise AssertionError("could not leave a connection in TIME_WAIT")


def wait_for_url(process) -> str:
    lines = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        lines.append(line)
        if "open http://" in line or process.poll() is not None:
            break
    return "".join(lines)


def test_restart_right_after_a_stop_is_not_refused(tmp_path):
    port = time_wait_port()
    before = set((REPO / "logs").glob("app_*.log"))
    process = start("--port", str(port), env={"I2V_OUTPUT_DIR": str(tmp_path)})
    try:
        output = wait_for_url(process)
        assert f"open http://localhost:{port}" in output, output
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        for log in set((REPO / "logs").glob("app_*.log")) - before:
            log.unlink()


def test_bad_flags():
    done = start("--port", "abc")
    output, _ = done.communicate(timeout=30)
    assert done.returncode == 2 and "not a number" in output


def test_starts_logs_and_serves(tmp_path):
    port = free_port()
    before = set((REPO / "logs").glob("app_*.log"))
    process = start("--host", "0.0.0.0", "--port", str(port), env={"I2V_OUTPUT_DIR": str(tmp_path)})
    try:
        output = wait_for_url(process)
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
