"""Motion templates (configs/templates.toml): read and checked, applied by the check step where the person
left a knob unset (camera move, intensity, frames at each family's fps, guidance), their words in the prompt
of a model that reads one, without an LLM; end to end on the camera engine and a tiny model, and through
the `i2v` command."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import tomllib

from i2v.checks import check
from i2v.cli import _parser, main
from i2v.engine import VideoEngine
from i2v.errors import InvalidInput
from i2v.export import read_mp4
from i2v.phrasing import camera_words
from i2v.request import CAMERA_MOTIONS, GenerationRequest
from i2v.templates import TEMPLATES_FILE, get_template, templates

ASKED_FOR = ["dance", "wave", "nod", "turn_around", "walk_forward", "hair_in_wind", "slow_push_in", "orbit", "smile",
             "blink_and_look"]  # fmt: skip


@pytest.fixture
def engine(tmp_path):
    return VideoEngine(tmp_path / "outputs", device="cpu")


def test_templates_are_data_in_the_files_order():
    found = templates()
    assert list(found) == list(tomllib.loads(TEMPLATES_FILE.read_text(encoding="utf-8"))["templates"])
    assert set(ASKED_FOR) <= set(found) and len(found) >= 15
    for template in found.values():
        assert template.label.en and re.search(r"[\u4e00-\u9fff]", template.label.zh), template.name
        assert template.camera_motion in CAMERA_MOTIONS and 0.1 <= template.motion_intensity <= 1.5
        assert {"default", "ltx", "literal"} <= set(template.motion) and template.seconds > 0


def test_an_unknown_template_is_refused_naming_it_and_the_known_ones(chelsea):
    assert get_template("Turn around").name == "turn_around" and get_template("slow-push-in").name == "slow_push_in"
    with pytest.raises(InvalidInput, match=r"template 'moonwalk' is not known: pick one of dance, wave, nod"):
        check(GenerationRequest(image=chelsea, model="wan2.1-i2v-14b-480p", template="moonwalk"))


def test_a_template_fills_what_the_person_left_unset(chelsea):
    checked = check(GenerationRequest(image=chelsea, prompt="a man in a park", model="wan2.1-i2v-14b-480p",
                                      template="walk_forward"))  # fmt: skip
    knobs, walk = checked.knobs, get_template("walk_forward")
    assert (knobs.template, knobs.camera_motion, knobs.motion_intensity) == ("walk_forward", "tracking", 1.1)
    assert knobs.num_frames == 81 and knobs.guidance_scale == 5.5  # 5 s at Wan's 16 fps (4n+1); 1.1 x its 5
    assert knobs.prompt == " ".join(["a man in a park.", walk.words("literal"), camera_words("tracking")])
    said = [a.code for a in checked.adjustments]
    assert said == ["template.applied", "template.frames", "template.guidance", "style.phrased"]

    mine = check(GenerationRequest(image=chelsea, prompt="a man in a park", model="wan2.1-i2v-14b-480p",
                                   template="walk_forward", camera_motion="pan_left", motion_intensity=0.3,
                                   num_frames=33, guidance_scale=4.0))  # fmt: skip
    knobs = mine.knobs
    assert (knobs.camera_motion, knobs.motion_intensity, knobs.num_frames, knobs.guidance_scale) == ("pan_left", 0.3, 33,
                                                                                                      4.0)  # fmt: skip
    assert walk.words("literal") in knobs.prompt and camera_words("pan_left") in knobs.prompt  # its words still apply
    kept = next(a for a in mine.adjustments if a.code == "template.yours_kept")
    assert kept.params["knobs"] == "camera_motion, motion_intensity, num_frames, guidance_scale"


@pytest.mark.parametrize(("model", "frames", "guidance", "dialect"), [
    ("wan2.2-ti2v-5b", 121, 5.5, "literal"),  # 5 s at 24 fps
    ("ltx-video", 121, 3.3, "ltx"),  # 5 s at 24 fps, 8n+1
    ("cogvideox-5b-i2v", 41, 6.6, "literal"),  # 5 s at 8 fps
    ("hunyuanvideo-i2v", 121, 6.6, "default"),
    ("ltx-video-long", 129, 1.0, "ltx"),  # 125 frames at 25 fps, 8n+1; distilled (guidance 1): no CFG switched on
    ("svd-xt", 25, 3.3, None),  # 35 frames at 7 fps is more than its 25: capped, and said; no words
    ("camera", 80, None, None),  # any count; no guidance, no words
])  # fmt: skip
def test_frames_and_guidance_follow_each_family(chelsea, model, frames, guidance, dialect):
    checked = check(GenerationRequest(image=chelsea, prompt="a woman", model=model, template="dance"))
    assert (checked.knobs.num_frames, checked.knobs.guidance_scale) == (frames, guidance)
    said = [a.code for a in checked.adjustments]
    if dialect is None:
        assert get_template("dance").words("default") not in checked.knobs.prompt
        assert "template.no_words" in said
    else:
        assert get_template("dance").words(dialect) in checked.knobs.prompt
    assert ("template.frames_capped" in said) == (model == "svd-xt")


@pytest.mark.parametrize(("model", "knobs", "frames", "guidance"), [
    ("wan2.1-i2v-14b-480p", {}, 81, 5.5),
    ("wan2.1-i2v-14b-480p", {"speed": "turbo"}, 81, None),  # distilled, guidance 1: no CFG switched back on
    ("ltx-video", {"fps": 30}, 121, 3.3),  # a pipeline makes its own 24 fps, whatever the file's
    ("ltx-video-long", {}, 129, None),  # distilled: none suggested (its own 1.0 runs)
    ("camera", {"fps": 24, "interpolate": 2}, 60, None),  # renders 12 fps, interpolated to 24: 5 s are 60 frames
])  # fmt: skip
def test_the_check_step_the_studio_and_the_command_suggest_the_same(chelsea, tmp_path, capsys, model, knobs, frames,
                                                                   guidance):  # fmt: skip
    from i2v.hardware import Hardware
    from i2v.templates import suggestion
    from prompting import PromptRefiner
    from studio import Studio

    checked = check(GenerationRequest(image=chelsea, prompt="a woman", model=model, template="dance", **knobs))
    applied = next((a.params["guidance_scale"] for a in checked.adjustments if a.code == "template.guidance"), None)
    assert (checked.knobs.num_frames, applied) == (frames, guidance)
    if knobs.get("speed") == "turbo":
        assert (checked.knobs.num_inference_steps, checked.knobs.guidance_scale) == (4, 1.0)  # the turbo's own
    dance = get_template("dance")
    assert suggestion(dance, checked.family, checked.source, **knobs) == (frames, guidance)
    studio = Studio(VideoEngine(tmp_path / "out", device="cpu"), PromptRefiner(), Hardware((), 16.0), model=model)
    form = {**knobs, "interpolate": f"x{knobs['interpolate']}"} if "interpolate" in knobs else knobs  # the page's
    assert studio.template_advice(dance, model, form) == {"num_frames": frames, "guidance_scale": guidance}
    if not knobs:  # the command lists each family's defaults
        assert main(["templates", "--model", model, "--json"]) == 0
        row = json.loads(capsys.readouterr().out)[0]
        assert (row["name"], row["num_frames"], row["guidance_scale"]) == ("dance", frames, guidance)


def test_words_already_in_the_prompt_are_not_added_again(chelsea):
    request = GenerationRequest(image=chelsea, prompt="a woman", model="ltx-video", template="hair_in_wind",
                                style="anime")  # fmt: skip
    shown = check(request).knobs.prompt  # what the studio shows before the run, say
    again = check(request.model_copy(update={"prompt": shown}))
    assert again.knobs.prompt == shown and "style.in_prompt" in [a.code for a in again.adjustments]
    segments = check(GenerationRequest(**{**request.model_dump(), "prompt": "", "segments": ["a woman stands",
                                                                                             "she looks up"]}))
    assert all(s.prompt.endswith(check(request).knobs.prompt.removeprefix("a woman.")) for s in segments.knobs.segments)


def test_a_template_on_the_camera_engine_moves_the_camera_by_it(engine, chelsea):
    def made(**fields):
        result = engine.generate(GenerationRequest(image=chelsea, height=32, width=48, seed=1, **fields))
        return read_mp4(result.path)[0], result

    pushed, result = made(template="slow_push_in")  # dolly_in at intensity 0.5, 5 s at 16 fps
    assert (result.camera_motion, result.motion_intensity, result.num_frames, result.fps) == ("dolly_in", 0.5, 80, 16)
    assert result.template == "slow_push_in" and result.preview
    full, _ = made(camera_motion="dolly_in", num_frames=80)  # the same move at its usual size
    change = lambda a, b: np.abs(a.astype(int) - b.astype(int)).mean()  # noqa: E731
    assert change(pushed[0], full[0]) < 4  # both start on the whole photo (H.264 loses a little) ...
    assert 3 < change(pushed[-1], pushed[0]) < change(full[-1], full[0])  # ... and the template's push travels less
    data = json.loads(result.metadata_path.read_text(encoding="utf-8"))
    assert data["template"] == "slow_push_in" and data["camera_motion"] == "dolly_in"


def test_a_template_on_a_tiny_model_without_an_llm(engine, tiny_models, chelsea):
    result = engine.generate(GenerationRequest(image=chelsea, prompt="a cat", model=str(tiny_models["wan2.2-ti2v-5b"]),
                                               template="wave", height=32, width=32, num_frames=9,
                                               num_inference_steps=2, seed=3))  # fmt: skip
    assert result.prompt == "a cat. " + get_template("wave").words("literal")
    assert result.num_frames == len(read_mp4(result.path)[0]) == 9  # the person's own frames kept
    assert json.loads(result.metadata_path.read_text(encoding="utf-8"))["prompt"] == result.prompt


def test_the_command_lists_templates_and_reads_style_spellings(capsys, chelsea, tmp_path):
    assert main(["templates", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["name"] for row in rows] == list(templates())
    assert {"label", "label_zh", "camera_motion", "motion_intensity", "seconds", "guidance_factor"} <= set(rows[0])
    assert main(["templates", "--model", "ltx-video", "--json"]) == 0
    dance = json.loads(capsys.readouterr().out)[0]
    assert (dance["name"], dance["num_frames"], dance["guidance_scale"]) == ("dance", 121, 3.3)
    assert main(["templates"]) == 0
    assert re.search(r"^orbit +Orbit +orbit_right +0.8 +5 +x1$", capsys.readouterr().out, re.M)
    flags = ["generate", "--image", str(chelsea), "--out", str(tmp_path)]
    assert _parser().parse_args([*flags, "--style", "3D"]).style == "3d"
    assert _parser().parse_args([*flags, "--style", "Watercolor"]).style == "watercolour"
    assert main([*flags, "--template", "moonwalk"]) == 2
    assert "template 'moonwalk' is not known" in capsys.readouterr().err
