"""Long videos by segments: chaining, seamless joins, colour held, durations, end frames and loops,
stopping a chain; through the engine on the camera engine and tiny models, decoded back."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from PIL import Image

from i2v.chain import Colour, hold_colour, join
from i2v.engine import VideoEngine
from i2v.errors import Cancelled, InvalidInput
from i2v.export import read_mp4
from i2v.families import get_family
from i2v.images import fit
from i2v.request import GenerationRequest

SMALL = dict(height=64, width=96, num_frames=9, fps=8, seed=11)


@pytest.fixture
def engine(tmp_path):
    return VideoEngine(tmp_path / "outputs", device="cpu")


def frame_steps(frames: np.ndarray) -> np.ndarray:
    """The mean absolute change from each frame to the next."""
    return np.abs(np.diff(frames.astype(np.float64), axis=0)).mean(axis=(1, 2, 3))


@pytest.mark.parametrize("motion", ["zoom_in", "pan_left", "orbit_right"])
def test_camera_chain_joins_without_a_repeat_or_a_jump(engine, chelsea, motion):
    segments = ["a cat looks up", "the cat turns its head", "the cat settles down"]
    frames, checked = engine.render_segments(
        engine.choose_levers(engine.choose_strategy(_checked(chelsea, segments=segments, camera_motion=motion))))
    assert len(frames) == 9 + 8 + 8  # each later segment drops its first frame: the frame it started on
    steps = frame_steps(frames)
    joins = [steps[8], steps[16]]  # from a segment's last frame to the next segment's first new frame
    inside = np.concatenate([steps[:8], steps[9:16], steps[17:]])
    for change in joins:
        assert change > 0.05, "a join repeats a frame"
        assert change < 0.6 * inside.max(), f"a join jumps: {change:.1f} vs {inside.max():.1f} inside a segment"


def test_camera_chain_written_with_every_segment_in_its_metadata(engine, chelsea):
    segments = ["a cat looks up", "the cat turns its head", "the cat settles down"]
    result = engine.generate(GenerationRequest(image=chelsea, segments=segments, camera_motion="zoom_in", **SMALL))
    frames, meta = read_mp4(result.path)
    assert len(frames) == result.num_frames == 25 and result.segment_frames == 9
    assert (result.width, result.height, result.fps) == (96, 64, 8) and meta["fps"] == 8
    assert [(s.prompt, s.seed) for s in result.segments] == [(p, 11 + i) for i, p in enumerate(segments)]
    assert result.prompt == segments[0]
    data = json.loads(result.metadata_path.read_text())
    assert [s["prompt"] for s in data["segments"]] == segments and data["num_frames"] == 25


def test_segment_seeds_given_and_repeatable(engine, chelsea):
    segments = [{"prompt": "one", "seed": 5}, {"prompt": "two", "seed": 99}]
    first = engine.generate(GenerationRequest(image=chelsea, segments=segments, camera_motion="handheld", **SMALL))
    again = engine.generate(GenerationRequest(image=chelsea, segments=segments, camera_motion="handheld", **SMALL))
    assert [s.seed for s in first.segments] == [5, 99]
    assert np.array_equal(read_mp4(first.path)[0], read_mp4(again.path)[0])


def test_the_next_segment_starts_from_the_last_frame_made(engine, tiny_models, chelsea, monkeypatch):
    """Segment k+1's pipeline receives segment k's last decoded frame as its photo (a spy on the
    family's call arguments and on the engine's renders, the real pipeline underneath)."""
    family = type(get_family("wan2.1-i2v-14b-480p"))
    photos, made = [], []
    call_kwargs, render = family.call_kwargs, VideoEngine.render

    def spy_kwargs(self, pipe, knobs, photo, last_photo, keyframes=()):
        photos.append(np.asarray(photo).copy())
        return call_kwargs(self, pipe, knobs, photo, last_photo, keyframes)

    def spy_render(self, *args, **kwargs):
        frames = render(self, *args, **kwargs)
        made.append(frames)
        return frames

    monkeypatch.setattr(family, "call_kwargs", spy_kwargs)
    monkeypatch.setattr(VideoEngine, "render", spy_render)
    request = GenerationRequest(image=chelsea, model=str(tiny_models["wan2.1-i2v-14b-480p"]), segments=["a", "b", "c"],
                                height=32, width=32, num_frames=5, fps=16, num_inference_steps=2, seed=3)  # fmt: skip
    result = engine.generate(request)
    from i2v.chain import as_uint8

    assert len(photos) == len(made) == 3
    assert np.array_equal(photos[1], as_uint8(made[0])[-1])  # exactly the frame segment 1 ended on
    video = read_mp4(result.path)[0]
    assert len(video) == result.num_frames == 5 + 4 + 4
    # The third starts from the second's last frame as the video shows it (held to the first's colour).
    assert np.abs(photos[2].astype(int) - video[8].astype(int)).mean() < 4  # H.264 loses a little


def test_duration_makes_the_segments_it_needs_and_trims_the_last(engine, chelsea):
    result = engine.generate(GenerationRequest(image=chelsea, prompt="a cat", duration=3.0, camera_motion="pan_right",
                                               **SMALL))  # fmt: skip
    # 3 s at 8 fps = 24 frames: segments of 9 frames add 8 each: 9, 17, 25 -> 3 segments, trimmed to 24
    assert len(result.segments) == 3 and all(s.prompt == "a cat" for s in result.segments)
    assert result.num_frames == 24 == len(read_mp4(result.path)[0])
    assert any("3 s: 3 segments of 9 frames" in str(a) for a in result.adjustments)


def test_a_short_duration_is_one_call(engine, chelsea):
    result = engine.generate(GenerationRequest(image=chelsea, duration=0.5, **{**SMALL, "num_frames": None}))
    assert result.segments == [] and result.num_frames == 4  # 0.5 s at 8 fps; the camera takes any count


@pytest.mark.parametrize(("fields", "words"), [
    (dict(segments=["a", "b"], prompt="other"), "the prompt 'other' is not the first segment's 'a'"),
    (dict(segments=["a", "b"], duration=5.0), "takes 5 segments of 9 frames, but 2 segment prompts were given"),
    (dict(duration=600.0), "32 at most"),
    (dict(interpolate=4, fps=None), "64 fps: interpolation goes up to 60 fps"),  # the camera's 16 fps x 4
    (dict(upscale=4, height=720, width=1280), "1280x720 x 4 is 5120x2880: upscaling goes up to 3840x2160"),
    (dict(duration=60.0, num_frames=241, height=1080, width=1920, interpolate=2, fps=30), "GB in memory"),
    (dict(loop=True), "cannot end on a given frame, so it cannot loop"),
])  # fmt: skip
def test_long_requests_that_cannot_run_are_refused_first(engine, chelsea, tmp_path, fields, words):
    with pytest.raises(InvalidInput, match=words):
        engine.generate(GenerationRequest(image=chelsea, **{**SMALL, **fields}))
    assert not list((tmp_path / "outputs").glob("*.mp4"))


def test_loop_ends_the_last_segment_on_the_first_photo(engine, tiny_models, chelsea, monkeypatch):
    family = type(get_family("wan2.2-i2v-a14b"))
    lasts = []
    call_kwargs = family.call_kwargs

    def spy_kwargs(self, pipe, knobs, photo, last_photo, keyframes=()):
        lasts.append(None if last_photo is None else np.asarray(last_photo).copy())
        return call_kwargs(self, pipe, knobs, photo, last_photo, keyframes)

    monkeypatch.setattr(family, "call_kwargs", spy_kwargs)
    request = GenerationRequest(image=chelsea, model=str(tiny_models["wan2.2-i2v-a14b"]), segments=["a", "b"], loop=True,
                                height=32, width=32, num_frames=5, fps=16, num_inference_steps=2, seed=3)  # fmt: skip
    result = engine.generate(request)
    assert result.loop and result.num_frames == 9
    assert lasts[0] is None  # only the last segment ends on the first photo
    assert np.array_equal(lasts[1], np.asarray(fit(Image.open(chelsea).convert("RGB"), 32, 32)))
    with pytest.raises(InvalidInput, match="leave out the end photo, or loop"):
        engine.generate(request.model_copy(update={"last_image": chelsea}))


def test_stop_mid_chain_keeps_nothing_unless_asked(engine, chelsea, tmp_path):
    def stop_at_segment_two(cancel):
        def on_progress(progress):
            if progress.segment == 2 and progress.step >= 3:
                cancel.set()
        return on_progress

    request = GenerationRequest(image=chelsea, segments=["a", "b", "c"], **SMALL)
    cancel = threading.Event()
    with pytest.raises(Cancelled):
        engine.generate(request, on_progress=stop_at_segment_two(cancel), cancel=cancel)
    assert not [p for p in (tmp_path / "outputs").rglob("*") if p.is_file()]

    cancel = threading.Event()
    kept = engine.generate(request.model_copy(update={"keep_segments": True}), on_progress=stop_at_segment_two(cancel),
                           cancel=cancel)  # fmt: skip
    assert kept.num_frames == 9 == len(read_mp4(kept.path)[0])
    assert any("stopped after 1 of 3 segments" in str(a) for a in kept.adjustments)

    cancel = threading.Event()  # asked to interpolate (8 fps made, 16 in the file) and upscale too: what was kept is
    # written at once, as made, at the 8 fps it was made at
    kept = engine.generate(request.model_copy(update={"keep_segments": True, "interpolate": 2, "upscale": 2, "fps": 16}),
                           on_progress=stop_at_segment_two(cancel), cancel=cancel)  # fmt: skip
    assert (kept.num_frames, kept.width, kept.fps, kept.interpolation, kept.upscaler) == (9, 96, 8, None, None)
    assert any("without interpolation or upscaling" in str(a) for a in kept.adjustments)


def test_progress_covers_the_whole_chain(engine, chelsea):
    seen = []
    engine.generate(GenerationRequest(image=chelsea, segments=["a", "b"], **SMALL), on_progress=seen.append)
    rendering = [(p.segment, p.segments, p.step) for p in seen if p.stage == "rendering"]
    assert rendering[0] == (1, 2, 1) and rendering[-1] == (2, 2, 9)


def test_hold_colour_undoes_drift_without_a_jump_at_the_join():
    rng = np.random.default_rng(0)
    base = rng.integers(40, 200, size=(1, 16, 16, 3)).astype(np.float64)
    first = np.repeat(base, 5, axis=0).astype(np.uint8)
    drift = np.linspace(0, 30, 5)[:, None, None, None]  # the next segment gets brighter as it goes
    second = np.clip(base + drift, 0, 255).astype(np.uint8)
    held, shift = hold_colour(second, Colour.of(first))
    assert np.array_equal(held[0], second[0])  # the join is untouched
    assert abs(held[-1].mean() - first.mean()) < abs(second[-1].mean() - first.mean()) / 2
    assert shift < -5
    assert len(join([first, held])) == 9


def _checked(photo, **fields):
    from i2v.checks import check

    return check(GenerationRequest(image=photo, **{**SMALL, **fields}))


def test_a_family_that_chains_badly_points_to_the_long_video_families(tiny_models, chelsea):
    from i2v.checks import check

    checked = check(GenerationRequest(image=chelsea, model=str(tiny_models["svd-xt"]), segments=["", ""], height=32,
                                      width=32, num_frames=5))  # fmt: skip
    said = [str(a) for a in checked.adjustments if a.code == "request.chains_badly"]
    assert said and "svd-xt drifts when chained" in said[0] and "framepack" in said[0]
    worded = check(GenerationRequest(image=chelsea, model=str(tiny_models["svd-xt"]), segments=["a cat", "it sits"],
                                     height=32, width=32, num_frames=5))  # fmt: skip
    assert "request.no_text_prompt" in [a.code for a in worded.adjustments]  # its segments' words are said unused
    assert [s.prompt for s in worded.knobs.segments] == ["", ""]


@pytest.mark.parametrize(("family_id", "fields", "words"), [
    ("wan2.1-flf2v-14b-720p", dict(segments=["a", "b"], loop=True), "cannot make 2 segments"),
    ("wan2.1-flf2v-14b-720p", dict(), "give it a last photo"),
    ("ltx-video-condition", dict(keyframes=[{"image": "KEY", "frame": 0}]), "frame 0"),
])  # fmt: skip
def test_photos_a_family_cannot_take_are_refused_before_it_loads(tiny_models, chelsea, family_id, fields, words):
    from i2v.checks import check

    fields = {k: ([{**v[0], "image": chelsea}] if k == "keyframes" else v) for k, v in fields.items()}
    with pytest.raises(InvalidInput, match=words):
        check(GenerationRequest(image=chelsea, model=str(tiny_models[family_id]), height=32, width=32, num_frames=9,
                                **fields))  # fmt: skip


@pytest.mark.parametrize("motion", ["pan_left", "tilt_up", "zoom_out", "dolly_out", "orbit_left", "crane_down"])
def test_a_camera_chain_never_runs_off_its_picture(engine, chelsea, motion):
    """Later segments start from a frame, not the photo: what lies beyond it is mirrored, never black."""
    photo = np.maximum(np.asarray(Image.open(chelsea).convert("RGB")), 40)  # nothing dark to begin with
    from tempfile import NamedTemporaryFile

    with NamedTemporaryFile(suffix=".png") as file:
        Image.fromarray(photo).save(file.name)
        frames, _ = engine.render_segments(engine.choose_levers(engine.choose_strategy(
            _checked(file.name, segments=["a", "b", "c"], camera_motion=motion, num_frames=17))))
    dark = (frames.max(axis=-1) < 8).mean(axis=(1, 2))
    assert dark.max() < 0.001, f"{motion}: {dark.max():.1%} of a frame is black"


@pytest.mark.parametrize(("family_id", "duration", "fps", "calls", "per_call", "last"), [
    ("framepack", 4.0, 30, 1, 145, None),  # makes long clips itself: one call, trimmed to 120 frames
    ("skyreels-v2-df-1.3b-540p", 9.0, 24, 1, 257, None),  # 216 frames: three whole windows in one call
    ("wan2.1-flf2v-14b-720p", 6.0, 16, 1, 97, None),  # cannot chain: one call up to its 129 frames
    ("wan2.2-ti2v-5b", 5.1, 24, 2, 121, 5),  # 122 frames: 121, then only the frame still needed (4n+1: 5)
])  # fmt: skip
def test_a_duration_takes_the_fewest_calls_and_frames(tiny_models, chelsea, family_id, duration, fps, calls, per_call,
                                                      last):  # fmt: skip
    from i2v.checks import check

    fields = dict(loop=True) if family_id == "wan2.1-flf2v-14b-720p" else {}
    checked = check(GenerationRequest(image=chelsea, model=str(tiny_models[family_id]), duration=duration, fps=fps,
                                      height=32, width=32, **fields))  # fmt: skip
    assert (len(checked.knobs.segments) or 1, checked.knobs.num_frames, checked.last_segment_frames) == (calls,
                                                                                                        per_call, last)
    assert (checked.total_frames or checked.knobs.num_frames) == round(duration * fps)


def test_the_last_call_of_a_duration_makes_only_what_it_needs(engine, tiny_models, chelsea, monkeypatch):
    family = type(get_family("wan2.1-i2v-14b-480p"))
    asked, call_kwargs = [], family.call_kwargs

    def spy_kwargs(self, pipe, knobs, photo, last_photo, keyframes=()):
        asked.append(knobs.num_frames)
        return call_kwargs(self, pipe, knobs, photo, last_photo, keyframes)

    monkeypatch.setattr(family, "call_kwargs", spy_kwargs)
    result = engine.generate(GenerationRequest(image=chelsea, model=str(tiny_models["wan2.1-i2v-14b-480p"]), fps=16,
                                               duration=1.0, num_frames=9, height=32, width=32, num_inference_steps=2))  # fmt: skip
    # 1 s at Wan's 16 fps is 16 frames: 9, then 7 more, which a call of 4n+1 frames makes as 9 (it starts on the frame before)
    assert asked == [9, 9] and result.num_frames == 16 and result.segment_frames == 9
    result = engine.generate(GenerationRequest(image=chelsea, model=str(tiny_models["wan2.1-i2v-14b-480p"]), fps=16,
                                               duration=0.75, num_frames=9, height=32, width=32, num_inference_steps=2))  # fmt: skip
    assert asked[2:] == [9, 5] and result.num_frames == 12 == len(read_mp4(result.path)[0])


@pytest.mark.parametrize(("fields", "words"), [
    (dict(segments=["a", "b", "c"], duration=0.5), "takes 1 segments of 4 frames, but 3 segment prompts were given"),
    (dict(segments=["a", "b"], num_frames=1), "a segment of 1 frame cannot continue"),
])  # fmt: skip
def test_segments_that_cannot_be_made_as_asked_are_refused(engine, chelsea, fields, words):
    with pytest.raises(InvalidInput, match=words):
        engine.generate(GenerationRequest(image=chelsea, **{**SMALL, **fields}))


def test_a_single_segment_keeps_its_own_seed(engine, chelsea):
    result = engine.generate(GenerationRequest(image=chelsea, segments=[{"prompt": "a", "seed": 5}],
                                               **{**SMALL, "seed": None}))  # fmt: skip
    assert result.seed == 5 and result.prompt == "a"


def test_a_stop_during_interpolation_keeps_the_finished_video_only_when_asked(engine, chelsea, tmp_path):
    def stop_while_interpolating(cancel):
        return lambda progress: cancel.set() if progress.stage == "interpolating" and progress.step >= 2 else None

    request = GenerationRequest(image=chelsea, segments=["a", "b"], interpolate=2, **{**SMALL, "fps": 16})  # made at 8
    cancel = threading.Event()
    with pytest.raises(Cancelled):
        engine.generate(request, on_progress=stop_while_interpolating(cancel), cancel=cancel)
    assert not list((tmp_path / "outputs").glob("*.mp4"))
    cancel = threading.Event()
    kept = engine.generate(request.model_copy(update={"keep_segments": True}),
                           on_progress=stop_while_interpolating(cancel), cancel=cancel)  # fmt: skip
    assert (kept.num_frames, kept.fps, kept.interpolation) == (17, 8, None)
    assert any("without interpolation" in str(a) for a in kept.adjustments)


def test_a_stop_after_the_last_step_writes_nothing(engine, chelsea, tmp_path, monkeypatch):
    from i2v import chain

    cancel, joined = threading.Event(), chain.join

    def join_then_stop(parts):
        cancel.set()  # Stop lands while the segments are joined
        return joined(parts)

    monkeypatch.setattr(chain, "join", join_then_stop)
    with pytest.raises(Cancelled):
        engine.generate(GenerationRequest(image=chelsea, segments=["a", "b"], interpolate=2, **SMALL), cancel=cancel)
    assert not list((tmp_path / "outputs").glob("*.mp4"))


def test_hold_colour_leaves_a_change_of_scene_alone():
    dark = np.full((3, 8, 8, 3), 10, np.uint8)
    bright = np.full((4, 8, 8, 3), 140, np.uint8)
    bright[..., 0] = 150  # a little texture: a spread to compare
    held, shift = hold_colour(bright, Colour.of(dark))
    assert shift is None and np.array_equal(held, bright)


def test_hold_colour_leaves_a_new_hue_alone():
    red = np.zeros((3, 8, 8, 3), np.uint8)
    red[...] = (200, 60, 60)
    red[..., 1, :] += 9  # a little texture: a spread to compare
    blue = red[..., ::-1].copy()  # the same brightness, another hue: a new scene
    held, shift = hold_colour(np.concatenate([blue, blue]), Colour.of(red))
    assert shift is None and held[-1, 0, 0, 2] == 200


def test_keep_segments_keeps_a_whole_video_when_stop_lands_after_its_last_segment(engine, chelsea, monkeypatch):
    from i2v import chain

    cancel, joined = threading.Event(), chain.join

    def join_then_stop(parts):
        cancel.set()
        return joined(parts)

    monkeypatch.setattr(chain, "join", join_then_stop)
    kept = engine.generate(GenerationRequest(image=chelsea, segments=["a", "b", "c"], interpolate=2, keep_segments=True,
                                             **SMALL), cancel=cancel)  # fmt: skip
    assert kept.num_frames == 25 and kept.interpolation is None  # every segment, as made
    assert any("without interpolation" in str(a) for a in kept.adjustments)


def test_a_duration_shorter_than_the_frames_asked_makes_and_says_only_what_it_needs(engine, tiny_models, chelsea):
    result = engine.generate(GenerationRequest(image=chelsea, model=str(tiny_models["wan2.1-i2v-14b-480p"]), fps=16,
                                               num_frames=33, duration=0.25, height=32, width=32,
                                               num_inference_steps=2))  # fmt: skip
    said = [a.code for a in result.adjustments]
    # 0.25 s at Wan's 16 fps is 4 frames: one call of 5 (4n+1), cut to 4, and both said
    assert (result.segment_frames, result.num_frames) == (5, 4)
    assert "request.frames_for_duration" in said and "request.trimmed" in said


def test_hold_colour_says_a_cast_even_when_the_channels_move_apart():
    rng = np.random.default_rng(1)
    reference = rng.integers(40, 200, size=(2, 16, 16, 3)).astype(np.uint8)
    cast = reference.astype(np.int16)
    cast[..., 0] += 6  # warmer red, cooler blue: the mean of the channels does not move
    cast[..., 2] -= 6
    held, shift = hold_colour(cast.astype(np.uint8), Colour.of(reference))
    assert shift is not None and abs(shift) >= 5


def test_a_duration_that_the_frames_asked_already_cover_says_only_the_trim(tiny_models, chelsea):
    from i2v.checks import check

    checked = check(GenerationRequest(image=chelsea, model=str(tiny_models["wan2.1-i2v-14b-480p"]), num_frames=81,
                                      duration=5.0, fps=16, height=32, width=32))  # fmt: skip
    said = [str(a) for a in checked.adjustments]
    assert [a.code for a in checked.adjustments if a.code.startswith("request.")] == ["request.trimmed"], said
    assert checked.total_frames == 80 and checked.knobs.num_frames == 81
