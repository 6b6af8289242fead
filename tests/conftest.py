"""Shared fixtures: an isolated environment for every test, tiny models built once per session."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TESTDATA = Path(__file__).resolve().parent / "data"  # carried in the repo: a bare clone runs the suite
IMAGES = TESTDATA / "images"

# Set before anything imports huggingface_hub or gradio, which read these once.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
# A developer's own settings (an LLM endpoint, a model, a device) never reach the suite, nor the
# servers and commands it starts: cleared before any fixture reads them, and again for each test.
DEVELOPER_SETTINGS = ("I2V_", "OPENAI_")
for _name in [name for name in os.environ if name.startswith(DEVELOPER_SETTINGS)]:
    del os.environ[_name]
# gradio's own cache of uploads, for this run alone (a test checks that no video is copied into it).
os.environ["GRADIO_TEMP_DIR"] = tempfile.mkdtemp(prefix="i2v-tests-gradio-")
atexit.register(shutil.rmtree, os.environ["GRADIO_TEMP_DIR"], ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    import torch

    torch.set_num_threads(1)  # two threads beside a server process were 10x slower on 2 cores


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """No test sees the real Hugging Face cache, a real output dir or the user's settings: a
    developer's own LLM endpoint (OPENAI_*) or model and device (I2V_*) never reach the suite."""
    for name in list(os.environ):
        if name.startswith(DEVELOPER_SETTINGS):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-home" / "hub"))
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hf-home" / "hub"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """family id -> folder of a tiny random-weight model, made on first use."""
    from i2v.tiny import make_tiny

    root = tmp_path_factory.mktemp("tiny-models")
    made: dict[str, Path] = {}

    class Folders(dict):
        def __missing__(self, family_id):
            made[family_id] = make_tiny(family_id, root / family_id)
            self[family_id] = made[family_id]
            return made[family_id]

    return Folders()


@pytest.fixture(scope="session")
def chelsea() -> Path:
    return IMAGES / "chelsea.png"


@pytest.fixture(scope="session")
def coffee() -> Path:
    return IMAGES / "coffee.png"


@pytest.fixture(scope="session")
def llama_url(tmp_path_factory):
    """Base URL of a real llama-server with SmolLM2-135M, for the whole session."""
    from llama import llama_server

    with llama_server(tmp_path_factory.mktemp("llama") / "llama-server.log") as url:
        yield url


@pytest.fixture(scope="session")
def faulty_llm():
    from fakes.faulty_llm import FaultyLLM

    with FaultyLLM() as server:
        yield server


@pytest.fixture(scope="session")
def tiny_model(tiny_models) -> str:
    """The tiny model the app tests run on: a Wan 2.2 TI2V 5B of random weights."""
    return str(tiny_models["wan2.2-ti2v-5b"])


@pytest.fixture(scope="session")
def app_url(tiny_model, tmp_path_factory):
    """A launched app around the tiny model (CPU, offline refiner): (url, output dir)."""
    import app
    from llama import free_port
    from settings import Settings

    out = tmp_path_factory.mktemp("app-outputs")
    settings = Settings(model=tiny_model, output_dir=out, port=free_port(), queue_size=2, device="cpu")
    services = app.make_services(settings)
    server = app.serve(app.build_demo(services), services, block=False)
    yield f"http://127.0.0.1:{settings.port}/", out
    server.close()


@pytest.fixture
def cli_in_process(capsys, monkeypatch):
    """The `i2v` command run in this process (i2v.cli.main(ARGS)): (exit code, stdout, stderr). A
    process per call pays torch's and diffusers' imports again, seconds each; tests of the command as
    a process (exit codes, one line on stderr) start one. What the command sets for a process of its
    own (logging, the libraries' progress bars, warnings, the CUDA allocator's variable) is put back
    after, so no other test runs in a quietened process."""
    import logging
    import warnings

    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    from i2v.cli import main

    monkeypatch.setenv("PYTORCH_CUDA_ALLOC_CONF", os.environ.get("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True"))
    loggers = {name: logger.level for name, logger in logging.root.manager.loggerDict.items()
               if isinstance(logger, logging.Logger)}  # fmt: skip
    root = (logging.root.level, list(logging.root.handlers))
    bars = diffusers_logging.is_progress_bar_enabled(), transformers_logging.is_progress_bar_enabled()

    def run(*args) -> tuple[int, str, str]:
        with warnings.catch_warnings():
            code = main([str(arg) for arg in args])
        out, err = capsys.readouterr()
        return code, out, err

    yield run
    for name, logger in logging.root.manager.loggerDict.items():
        if isinstance(logger, logging.Logger):
            logger.setLevel(loggers.get(name, logging.NOTSET))
    logging.root.setLevel(root[0])
    logging.root.handlers[:] = root[1]
    for library, enabled in zip((diffusers_logging, transformers_logging), bars):
        library.enable_progress_bar() if enabled else library.disable_progress_bar()
