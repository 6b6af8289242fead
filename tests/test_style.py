"""The request's style knobs (style, color_palette, motion_intensity, camera_motion) and fps doing what they
claim in every family: prompt words where the model reads a prompt (i2v/phrasing.py), SVD's motion bucket,
the camera engine's amplitude, a colour grade, or a refusal; never accepted and dropped. fps is the
file's: the model's frames interpolated and retimed to it, the motion's speed kept. Through the check
step for every family, and end to end on the camera engine and tiny models, decoded back."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import tomllib

from i2v.checks import check
from i2v.engine import VideoEngine
from i2v.errors import InvalidInput
from i2v.export import read_mp4
from i2v.families import CONFIG_DIR, all_families, resolve
from i2v.interpolate import fps_factor, retime, retimed_count
from i2v.phrasing import (
    KNOBS,
    camera_words,
    dialect_of,
    effect,
    from_refiner,
    intensity_words,
    palette_words,
    phrase,
    refiner_intensity,
    style_words,
)
from i2v.request import CAMERA_MOTIONS, PALETTES, STYLES, GenerationRequest
from i2v.templates import get_template

# One value of each knob that is not its default, and what the prompt should then hold.
ASKED = {"style": "watercolour", "color_palette": "cool", "motion_intensity": 0.2, "camera_motion": "pan_left",
         "template": "hair_in_wind"}  # fmt: skip


@pytest.fixture
def engine(tmp_path):
    return VideoEngine(tmp_path / "outputs", device="cpu")


def base_request(family, photo) -> dict:
    """A request every family's check step takes: a prompt, and an end photo for the family that needs one."""
    fields = dict(image=photo, prompt="a cat sits on a sofa", model=family.id)
    try:
        check(GenerationRequest(**fields))
    except InvalidInput:
        fields["last_image"] = photo  # FLF2V makes the frames between two photos
        check(GenerationRequest(**fields))
    return fields


def words_for(knob: str, family) -> str:
    dialect = dialect_of(family.id)
    return {"style": lambda: style_words(ASKED["style"], dialect),
            "color_palette": lambda: palette_words(ASKED["color_palette"], dialect),
            "motion_intensity": lambda: intensity_words(ASKED["motion_intensity"], dialect),
            "camera_motion": lambda: camera_words(ASKED["camera_motion"]),
            "template": lambda: get_template(ASKED["template"]).words(dialect)}[knob]()  # fmt: skip


@pytest.mark.parametrize("family_id", list(all_families()))
def test_every_knob_is_applied_or_refused_in_every_family(family_id, chelsea):
    family = all_families()[family_id]
    base = base_request(family, chelsea)
    plain = check(GenerationRequest(**base))
    for knob in KNOBS:
        request = GenerationRequest(**{**base, knob: ASKED[knob]})
        claimed = effect(family, knob)
        if claimed == "refused":
            with pytest.raises(InvalidInput) as refused:
                check(request)
            assert refused.value.code.startswith(("style.", "template.")), (knob, refused.value)
            assert family_id in str(refused.value)  # it names the model (and the value, and what to do instead)
            continue
        checked = check(request)
        said = {note.code for note in checked.adjustments} - {note.code for note in plain.adjustments}
        if claimed == "phrasing":
            assert words_for(knob, family) in checked.knobs.prompt, (knob, checked.knobs.prompt)
            assert checked.knobs.prompt.startswith("a cat sits on a sofa.") and "style.phrased" in said
        else:  # the model reads no prompt: its words stay the person's
            assert checked.knobs.prompt == plain.knobs.prompt
        if claimed == "bucket":  # SVD: the intensity (the knob's, or the template's) sets its motion bucket
            intensity = checked.knobs.motion_intensity
            assert intensity is not None and family.motion_bucket(intensity) != family.motion_bucket(None)
            assert "style.bucket" in said
        if claimed == "amplitude":
            assert checked.knobs.motion_intensity is not None and "style.amplitude" in said
        if claimed == "rendered":  # the camera engine: the move itself (the template's, a dolly, too)
            assert checked.knobs.camera_motion != "static"
        if claimed == "grade":  # graded after the render: end to end in test_a_palette_grades_what_reads_no_prompt
            assert checked.knobs.color_palette == ASKED["color_palette"] and not family.text_prompt
        if knob == "template":
            assert "template.applied" in said and checked.knobs.template == ASKED["template"]


def test_what_reads_no_prompt_refuses_what_it_cannot_do_and_says_what_to_use(chelsea):
    with pytest.raises(InvalidInput, match="style anime: svd-xt reads no prompt.*wan2.2-ti2v-5b"):
        check(GenerationRequest(image=chelsea, model="svd-xt", style="anime"))
    with pytest.raises(InvalidInput, match="camera_motion orbit_left: svd-xt .* renders no camera move"):
        check(GenerationRequest(image=chelsea, model="svd-xt", camera_motion="orbit_left"))
    with pytest.raises(InvalidInput, match="template orbit moves the camera"):
        check(GenerationRequest(image=chelsea, model="svd-xt", template="orbit"))
    with pytest.raises(InvalidInput, match="style 3d: camera reads no prompt"):
        check(GenerationRequest(image=chelsea, model="camera", style="3D"))  # the request takes "3D" and "Watercolor"
    assert check(GenerationRequest(image=chelsea, model="svd-xt", camera_motion="static")).knobs.camera_motion == "static"


def test_phrasing_is_idempotent_and_worded_per_dialect():
    knobs = dict(template="dance", style="cinematic", color_palette="warm", motion_intensity=1.5,
                 camera_motion="dolly_in")  # fmt: skip
    once, said = phrase("A woman in a red dress", "wan2.1-i2v-14b-480p", **knobs)
    assert once.startswith("A woman in a red dress. The person dances to the beat") and said[0].code == "style.phrased"
    again, said_again = phrase(once, "wan2.1-i2v-14b-480p", **knobs)
    assert again == once and [n.code for n in said_again] == ["style.in_prompt"]  # nothing added again
    shouted, _ = phrase(once.upper(), "wan2.1-i2v-14b-480p", **knobs)
    assert shouted == once.upper()  # any case counts as said
    ltx, _ = phrase("A woman", "ltx-video", style="cinematic")
    hunyuan, _ = phrase("A woman", "hunyuanvideo-i2v", style="cinematic")
    assert ltx == "A woman. " + style_words("cinematic", "ltx") and hunyuan == "A woman. " + style_words("cinematic")
    assert len({ltx, hunyuan, phrase("A woman", "wan2.2-ti2v-5b", style="cinematic")[0]}) == 3
    # static and the usual intensity ask for no words; a model without a prompt gets none
    assert phrase("a cat", "ltx-video", camera_motion="static", motion_intensity=1.0) == ("a cat", [])
    assert phrase("a cat", "svd-xt", style="anime", template="wave") == ("a cat", [])


def test_every_style_palette_camera_and_intensity_has_words():
    for dialect in ("default", "ltx", "literal"):
        assert all(style_words(style, dialect) for style in STYLES)
        assert all(palette_words(palette, dialect) for palette in PALETTES)
        assert intensity_words(0.1, dialect) and intensity_words(1.5, dialect) and not intensity_words(1.0, dialect)
    assert all(camera_words(move) for move in CAMERA_MOTIONS if move != "static")
    # The refiner's offline camera sentences are the same words, so neither adds the other's again
    refiner = tomllib.loads((CONFIG_DIR / "refiner_words.toml").read_text(encoding="utf-8"))["camera_phrases"]
    assert all(refiner[move] == camera_words(move) for move in CAMERA_MOTIONS if move != "static")


def test_motion_intensity_maps_onto_the_refiners_scale():
    assert [refiner_intensity(v) for v in (0.1, 0.55, 1.0, 1.35, 1.5)] == [0.0, 0.25, 0.5, 0.85, 1.0]
    values = np.linspace(0.1, 1.5, 29)
    mapped = [refiner_intensity(v) for v in values]
    assert mapped == sorted(mapped) and all(from_refiner(m) == pytest.approx(v, abs=1e-3) for v, m in zip(values, mapped))


def test_motion_intensity_sets_svds_motion_bucket(engine, tiny_models, chelsea):
    family = all_families()["svd-xt"]
    assert [family.motion_bucket(v) for v in (None, 0.1, 0.5, 1.0, 1.5)] == [127, 13, 64, 127, 190]
    model = str(tiny_models["svd-xt"])

    def made(intensity):
        request = GenerationRequest(image=chelsea, model=model, height=32, width=32, num_frames=4, num_inference_steps=2,
                                    seed=3, motion_intensity=intensity)  # fmt: skip
        result = engine.generate(request)
        return read_mp4(result.path)[0], result

    calm, calm_result = made(0.2)
    lively, lively_result = made(1.5)
    assert calm_result.motion_intensity == 0.2 and lively_result.motion_intensity == 1.5
    assert any("motion bucket 25" in str(a) for a in calm_result.adjustments)
    assert np.abs(calm.astype(int) - lively.astype(int)).mean() > 0.5  # the same seed: only the bucket differs
    pipe = engine.load(resolve(model), "none")
    knobs = check(GenerationRequest(image=chelsea, model=model, motion_intensity=0.2)).knobs
    kwargs = family.call_kwargs(pipe, knobs, None, None)
    assert kwargs["motion_bucket_id"] == 25 and kwargs["fps"] == family.fps  # conditioned on the fps it makes


def pan_shift(frames: np.ndarray) -> float:
    """How far the picture moved sideways from the first frame to the last (pixels): the sum of each
    step's shift, measured by phase correlation."""
    gray = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32) for frame in frames]
    return abs(sum(cv2.phaseCorrelate(a, b)[0][0] for a, b in zip(gray, gray[1:])))


def test_motion_intensity_scales_the_camera_move(engine, chelsea):
    def pan(intensity):
        result = engine.generate(GenerationRequest(image=chelsea, camera_motion="pan_left", height=64, width=96,
                                                   num_frames=9, fps=16, seed=1, motion_intensity=intensity))  # fmt: skip
        return read_mp4(result.path)[0], result

    (small, result), (usual, _), (large, _) = pan(0.5), pan(None), pan(1.5)
    assert any("at 50% of its usual size" in str(a) for a in result.adjustments)
    # the usual pan travels 0.24 of the frame's width: 23 px of 96
    assert pan_shift(usual) == pytest.approx(23, abs=2.5)
    assert pan_shift(small) == pytest.approx(pan_shift(usual) * 0.5, abs=2.5)
    assert pan_shift(large) > pan_shift(usual) * 1.3  # half again as far (zoomed in a little to stay in the photo)
    edges = [large[:, :, :2], large[:, :, -2:], large[:, :2], large[:, -2:]]
    assert min(edge.mean(axis=(1, 2, 3)).min() for edge in edges) > 15  # no empty (black) edge came into view


def test_a_palette_grades_what_reads_no_prompt(engine, chelsea):
    def made(palette):
        result = engine.generate(GenerationRequest(image=chelsea, height=48, width=64, num_frames=3, seed=1,
                                                   color_palette=palette))  # fmt: skip
        return read_mp4(result.path)[0].reshape(-1, 3).astype(float).mean(axis=0), result

    (plain, _), (warm, result), (cool, _), (neutral, _) = made(None), made("warm"), made("cool"), made("neutral")
    assert any(a.code == "style.graded" for a in result.adjustments) and result.color_palette == "warm"
    assert warm[0] - warm[2] > plain[0] - plain[2] + 8  # redder against blue
    assert cool[0] - cool[2] < plain[0] - plain[2] - 8
    assert np.ptp(neutral) < np.ptp(plain) - 8  # the channels' means closer: the cast partly taken out ...
    gentle = np.abs(neutral / plain - 1).max()  # ... gently: no channel moved further than warm's or cool's 8%
    assert gentle <= 0.085 and gentle <= max(np.abs(warm / plain - 1).max(), np.abs(cool / plain - 1).max()) + 0.005


def test_fps_plans_from_the_models_own_rate(chelsea):
    def plan(model, **fields):
        checked = check(GenerationRequest(image=chelsea, model=model, **fields))
        return checked.knobs.fps, checked.file_fps, checked.fps_factor, [a.code for a in checked.adjustments]

    assert plan("wan2.1-i2v-14b-480p", fps=30)[:3] == (16, 30, 2)  # made at 16, interpolated to 32, timed to 30
    assert "fps.planned" in plan("wan2.1-i2v-14b-480p", fps=30)[3]
    assert plan("wan2.1-i2v-14b-480p", fps=8)[:3] == (16, 8, 1)  # frames dropped evenly
    assert plan("wan2.1-i2v-14b-480p", fps=30, interpolate=4)[:3] == (16, 30, 4)  # at least the factor asked
    assert plan("wan2.1-i2v-14b-480p", interpolate=2)[:3] == (16, 32, 2)  # no fps: the model's times interpolate
    assert plan("svd-xt", fps=60)[:3] == (7, 60, 16)  # x16: two passes of 4
    assert plan("cogvideox-5b-i2v", fps=24)[:3] == (8, 24, 4)
    assert plan("camera", fps=30)[:3] == (30, 30, 1)  # the camera engine renders any fps itself
    assert plan("camera", fps=30, interpolate=2)[:3] == (15, 30, 2)  # ... over the interpolation asked
    checked = check(GenerationRequest(image=chelsea, model="wan2.1-i2v-14b-480p", fps=30, duration=2.0))
    assert checked.total_frames == 32  # a duration counts the model's frames at its own 16 fps
    with pytest.raises(InvalidInput, match="30 fps x 4 is 120 fps"):
        check(GenerationRequest(image=chelsea, model="framepack", interpolate=4))


def test_retime_keeps_the_motions_time():
    frames = np.arange(17, dtype=np.uint8).reshape(17, 1, 1, 1).repeat(3, axis=3)  # frame k shows k
    assert retimed_count(17, 32, 30) == 16 and retimed_count(9, 16, 8) == 5 and retimed_count(5, 8, 8) == 5
    assert retime(frames, 32, 30)[:, 0, 0, 0].tolist() == [round(j * 32 / 30 + 1e-9) for j in range(16)]
    assert retime(frames, 16, 8)[:, 0, 0, 0].tolist() == [0, 2, 4, 6, 8, 10, 12, 14, 16]
    assert retime(frames, 16, 16) is frames
    assert [fps_factor(16, f) for f in (8, 16, 17, 32, 33, 60)] == [1, 1, 2, 2, 4, 4]
    assert fps_factor(7, 60) == 16 and fps_factor(16, 24, asked=4) == 4


def test_fps_is_the_files_with_the_motion_at_its_speed(engine, tiny_models, chelsea):
    model = str(tiny_models["wan2.1-i2v-14b-480p"])

    def made(fps):
        request = GenerationRequest(image=chelsea, prompt="a cat", model=model, height=32, width=32, num_frames=9,
                                    num_inference_steps=2, seed=3, fps=fps)  # fmt: skip
        result = engine.generate(request)
        frames, meta = read_mp4(result.path)
        assert len(frames) == result.num_frames and meta["fps"] == result.fps == (fps or 16)
        return frames, result

    own, own_result = made(None)
    faster, result = made(30)
    slower, dropped = made(8)
    assert own_result.num_frames == 9 and result.segment_frames == 9
    # 9 frames at 16 fps span 0.5 s: x2 makes 17 at 32 fps, timed to 30 fps: 16 frames over the same 0.5 s
    assert result.num_frames == 16 and result.interpolation == "optical_flow"
    assert [a.code for a in result.adjustments if a.code.startswith("fps.")] == ["fps.planned", "fps.retimed"]
    assert np.abs(faster[0].astype(int) - own[0].astype(int)).mean() < 3  # the same start (H.264 loses a little)
    # 8 fps: every other frame the model made, over the same 0.5 s (which ones: the next test)
    assert dropped.num_frames == len(slower) == 5 and dropped.interpolation is None
    assert [a.code for a in dropped.adjustments if a.code.startswith("fps.")] == ["fps.planned_fewer", "fps.dropped"]


def test_finish_times_the_models_frames_to_the_files_fps(engine, chelsea):
    # Flat frames, frame k all at level 10k: optical flow finds no motion, so a frame made between two
    # is their blend, and every frame of the file says which moment of the model's clip it shows.
    made = (np.arange(9, dtype=np.uint8) * 10).reshape(9, 1, 1, 1) * np.ones((1, 16, 16, 3), np.uint8)

    def finished(**fields):
        checked = check(GenerationRequest(image=chelsea, model="wan2.1-i2v-14b-480p", num_frames=9, **fields))
        frames, done, post = engine.finish(made, checked)
        return frames[:, 0, 0, 0].tolist(), done.knobs.fps, post

    assert finished(fps=8) == ([0, 20, 40, 60, 80], 8, {})  # every other frame: dropped evenly
    levels, fps, post = finished(fps=30)  # x2 (a level every 5 at 32 fps), then the nearest one every 1/30 s
    assert fps == 30 and post == {"interpolation": "optical_flow"}
    assert levels == [5 * round(j * 32 / 30 + 1e-9) for j in range(16)] and levels[-1] == 80  # the same 0.5 s
    assert finished(fps=60)[0] == [round(2.5 * round(j * 64 / 60 + 1e-9)) for j in range(31)]  # x4 for 60
    assert finished()[:2] == (list(range(0, 90, 10)), 16)  # the model's own fps: the frames as made
