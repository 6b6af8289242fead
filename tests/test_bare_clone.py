"""The README's test command on a bare clone: the suite carries its own photos and prompts, and a
developer's own settings (an LLM endpoint, a model) never reach it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from conftest import REPO

PROBE = '''
import os

from settings import Settings


def test_developer_settings_are_cleared():
    assert not [name for name in os.environ if name.startswith(("I2V_", "OPENAI_"))]
    settings = Settings()
    assert not settings.llm_configured and settings.model == "auto"
'''


def test_suite_runs_on_a_clone_with_nothing_beside_it(tmp_path):
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    clone = tmp_path / "clone" / "i2v-studio"  # no shared/ beside it
    for name in files:
        source = REPO / name
        if source.is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, clone / name)
    (clone / "tests" / "test_probe_env.py").write_text(PROBE)
    env = {**os.environ, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": "sk-developer",
           "I2V_LLM_MODEL": "developer-model", "I2V_MODEL": "/developer/model"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_probe_env.py",
         "tests/test_refiner_llama.py", "tests/test_images.py", "-k", "offline or plain_rgb or developer"],
        cwd=clone, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and " failed" not in done.stdout
