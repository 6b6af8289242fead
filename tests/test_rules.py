"""The offline refiner: camera and motion words in Chinese and English, honest warnings."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from prompting import refine_offline
from prompting.text import clean, cut_words, language


@pytest.mark.parametrize(
    ("text", "camera"),
    [
        ("镜头推近小狗", "dolly_in"), ("镜头慢慢推进", "dolly_in"), ("镜头拉远", "zoom_out"),
        ("向左平移镜头", "pan_left"), ("镜头左移", "pan_left"), ("向右平移", "pan_right"),
        ("镜头向上摇", "tilt_up"), ("向下摇", "tilt_down"), ("环绕拍摄", "orbit_left"), ("向右环绕", "orbit_right"),
        ("手持拍摄", "handheld"), ("跟拍", "tracking"), ("固定镜头", "static"),
        ("zoom in on the face", "zoom_in"), ("Pan right across the bay", "pan_right"), ("slow dolly in", "dolly_in"),
        ("pull back to reveal the city", "dolly_out"), ("crane up over the trees", "crane_up"),
        ("the camera tilts down", "tilt_down"), ("orbit around the statue", "orbit_left"),
    ],
)  # fmt: skip
def test_camera_words(text, camera):
    assert refine_offline(text, "ltx-video").camera_motion == camera


@pytest.mark.parametrize(
    ("text", "camera"),
    [("猫向右转头", "static"), ("she turns right", "static"), ("the panda eats", "static"), ("zoomies", "static")],
)
def test_directions_and_lookalikes_are_not_camera_moves(text, camera):
    assert refine_offline(text, "ltx-video").camera_motion == camera


@pytest.mark.parametrize(
    ("text", "tag"),
    [("慢动作", "slow_motion"), ("in slow motion", "slow_motion"), ("延时摄影", "timelapse"),
     ("seamless loop", "loop"), ("微微摆动", "subtle"), ("dramatic storm", "dynamic")],
)  # fmt: skip
def test_motion_tags(text, tag):
    assert tag in refine_offline(text, "ltx-video").motion_tags


def test_keeps_the_words_and_adds_family_phrasing():
    result = refine_offline("the cat yawns", "ltx-video")
    assert result.prompt.startswith("the cat yawns.")
    assert "natural lighting" in result.prompt  # LTX's quality phrasing from configs/refiner.toml
    assert result.negative_prompt.startswith("worst quality")
    assert [str(w) for w in result.warnings] == ["no LLM refined this prompt: it is your own words plus camera and quality phrasing"]
    assert result.language == "en" and result.subjects == ["cat"]


def test_chinese_is_kept_and_the_warning_says_it_was_not_translated():
    result = refine_offline("猫转头，不要模糊", "wan2.2-ti2v-5b")
    assert result.prompt.startswith("猫转头")
    assert result.language == "zh" and result.subjects == ["cat"]
    assert result.negative_prompt.startswith("blurry")  # 不要模糊 -> avoid blur
    assert any("cannot translate" in str(w) for w in result.warnings)


def test_empty_prompt_proposes_subtle_motion():
    result = refine_offline("", "wan2.2-ti2v-5b", has_image=True)
    assert result.prompt and result.camera_motion == "dolly_in" and "subtle" in result.motion_tags
    assert any("no prompt was given" in str(w) for w in result.warnings)


def test_language_detection():
    assert [language(t) for t in ("猫转头", "the cat", "ねこ", "고양이", "Кот", "", "123")] == [
        "zh", "en", "ja", "ko", "other", "", "",
    ]  # fmt: skip


def test_clean_and_cut():
    text, warnings = clean("a\u200bb\x00c\n\nd", 100)
    assert text == "abc d" and warnings
    assert cut_words("one two three. four five six", 4) == ("one two three.", True)
    assert cut_words("one two three four five", 3) == ("one two three", True)
    assert cut_words("short", 4) == ("short", False)


def test_command_line(faulty_llm, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "I2V_LLM_MODEL")}
    run = lambda *args, **extra: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "prompting", *args], capture_output=True, text=True, env={**env, **extra}
    )
    offline = run("向左平移镜头", "--family", "ltx-video", "--json")
    assert offline.returncode == 0, offline.stderr
    assert json.loads(offline.stdout)["camera_motion"] == "pan_left"
    remote = run("猫转头", "--json", OPENAI_BASE_URL=faulty_llm.base_url, I2V_LLM_MODEL="ok#cli", OPENAI_API_KEY="sk-x")
    result = json.loads(remote.stdout)
    assert result["source"] == "llm" and result["model"] == "ok#cli"
    human = run("猫转头")
    assert "source: offline" in human.stdout and "warning:" in human.stdout
    bad = run("cat", "--image", str(tmp_path / "none.png"))
    assert bad.returncode == 2 and "does not exist" in bad.stderr


@pytest.mark.parametrize(
    ("text", "found", "not_found"),
    [
        ("火箭升空", ["rocket"], ["fire"]),  # 火 (fire) inside 火箭 (rocket) is no fire
        ("机器人跳舞", ["robot"], ["person"]),
        ("山羊吃草", ["goat"], ["mountain"]),
        ("篝火在燃烧，火很旺", ["fire"], []),
        ("镜头推近小狗", ["dog"], []),
        ("一个女人在雨中行走", ["woman", "rain"], ["person"]),
        ("the firefly and the fire", ["fire"], []),
    ],
)  # fmt: skip
def test_subjects_are_whole_words(text, found, not_found):
    subjects = refine_offline(text, "ltx-video").subjects
    assert all(s in subjects for s in found), subjects
    assert not any(s in subjects for s in not_found), subjects


def test_an_untranslated_prompt_says_so():
    # The offline refiner keeps the person's Chinese: the result must not pass for English.
    result = refine_offline("猫转头", "wan2.2-ti2v-5b")
    assert result.prompt.startswith("猫转头") and result.prompt_language == "zh" and not result.translated
    english = refine_offline("the cat turns its head", "wan2.2-ti2v-5b")
    assert english.prompt_language == "en" and english.translated
