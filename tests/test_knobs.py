"""One knob set: what a person can ask for is said once, in GenerationRequest, and the rest derives
from it; each family's quirks live in its room, not in the generic engine."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO
from i2v.families import all_families, load_families
from i2v.memory import RunShape
from i2v.request import GenerationRequest, VideoResult


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "i2v.cli", *args], capture_output=True, text=True)


def test_the_result_and_the_run_shape_carry_the_request_knobs():
    assert set(GenerationRequest.knobs()) <= set(VideoResult.model_fields)
    assert set(RunShape.knobs()) <= set(GenerationRequest.knobs())


def test_every_knob_is_a_flag_of_i2v_generate():
    text = cli("generate", "--help").stdout
    for name in GenerationRequest.knobs():
        assert f"--{name.replace('_', '-')}" in text, name
    for short in ("--frames", "--steps", "--guidance", "--camera", "--offload"):  # the spellings people use
        assert short in text


def test_the_planner_flags_are_the_run_shape_knobs():
    text = cli("plan", "--help").stdout
    for name in RunShape.knobs():
        assert f"--{name.replace('_', '-')}" in text, name
    assert "--strategy" in text  # its older spelling still works


def test_the_engine_knows_no_family_by_name():
    # What differs between families is in their rooms (i2v/families/), not in the generic code.
    generic = [REPO / "i2v" / name for name in ("engine.py", "checks.py", "placement.py", "memory.py", "export.py")]
    names = {f.pipeline for f in load_families().values()} | set(all_families())
    for path in generic:
        text = path.read_text(encoding="utf-8")
        found = [name for name in names if f'"{name}"' in text]
        assert not found, f"{path.name} names {found}"


def test_every_family_has_a_room_and_a_tiny_model():
    from i2v.families.base import Family

    for family in all_families().values():
        assert type(family).__module__.startswith("i2v.families."), family.id
        if family.pipeline:  # the camera engine needs no weights, so no tiny model either
            assert type(family).tiny_components is not Family.tiny_components, family.id


def test_plan_for_the_camera_engine_says_it_needs_no_gpu():
    # It said "unknown model 'camera': use one of camera, ...".
    done = cli("plan", "--vram-gb", "8", "--model", "camera")
    assert done.returncode == 0 and "needs no GPU memory" in done.stdout, done.stderr
    report = json.loads(cli("plan", "--vram-gb", "8", "--model", "camera", "--json").stdout)
    assert report["needs_gpu"] is False and report["fits"] is True
