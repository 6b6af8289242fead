"""LTX-Video's long multi-prompt pipeline (ltx-video-long) on its tiny model, through the engine: a
request's segments are one call's prompt schedule over the pipeline's temporal windows, not a chain."""

from __future__ import annotations

import json
import threading

import pytest
from pydantic import ValidationError

from i2v.checks import check
from i2v.engine import VideoEngine
from i2v.errors import Cancelled, InvalidInput
from i2v.export import read_mp4
from i2v.families import FAMILY_MARKER, get_family, resolve
from i2v.images import fit
from i2v.request import GenerationRequest

LONG = "ltx-video-long"

# The full-size run to measure on a GPU (bench/long_families.py belongs to another engineer): the
# pipeline's docstring example (diffusers 0.42.1, pipeline_ltx_i2v_long_multi_prompt.py: "a chimpanzee
# walks | a chimpanzee eats", 161 frames at 704x512, windows of 80 frames sharing 24, 8 distilled steps,
# guidance 1), then the longest Lightricks show: their long multi-prompt ComfyUI workflow
# (ComfyUI-LTXVideo example_workflows/ltxv-13b-i2v-long-multi-prompt.json: 361 frames at 768x512,
# three prompts, 24 fps). Both as requests, every other knob the family's default.
FULL_SIZE = dict(model=LONG, segments=["a chimpanzee walks", "a chimpanzee eats"], height=512, width=704,
                 num_frames=161, fps=25, num_inference_steps=8, guidance_scale=1.0)  # fmt: skip
LONGEST = dict(model=LONG, segments=["a chimpanzee walks in the jungle", "a chimpanzee stops and eats a snack",
                                     "a chimpanzee lays on the ground"],
               height=512, width=768, num_frames=361, fps=24, num_inference_steps=8, guidance_scale=1.0)  # fmt: skip
PROMPTS = ["a cat looks up", "the cat turns its head", "the cat lies down"]


def tiny_request(photo, model, **overrides) -> GenerationRequest:
    # fps 25: the family's own, so the frames made are the file's and a duration counts them at it
    fields = dict(image=photo, segments=PROMPTS, negative_prompt="blurry", model=str(model), height=64, width=64,
                  num_frames=41, fps=25, num_inference_steps=2, seed=7)  # fmt: skip
    return GenerationRequest(**{**fields, **overrides})


@pytest.fixture
def engine(tmp_path):
    return VideoEngine(tmp_path / "outputs", device="cpu")


@pytest.fixture
def tiny_tiles(monkeypatch):
    """ltx-video-long with windows a tiny clip has several of: 16 frames (2 latent frames) sharing 8
    (1), where models.toml says 80 sharing 24. The room reads its tiles from models.toml, so the test
    changes that data, validated as the file's would be, and nothing else: 41 frames (6 latent) make
    5 windows, (0, 2) (1, 3) (2, 4) (3, 5) (4, 6)."""
    import i2v.families as families

    real = families.all_families()
    small = type(real[LONG])(**{**real[LONG].model_dump(), "temporal_tile_size": 16, "temporal_overlap": 8})
    monkeypatch.setattr(families, "all_families", lambda: {**real, LONG: small})
    return small


def count_renders(engine) -> list[int]:
    """The frames of each render (one pipeline call) the engine makes from now on."""
    renders, render = [], engine.render

    def counted(checked, *args, **kwargs):
        renders.append(checked.knobs.num_frames)
        return render(checked, *args, **kwargs)

    engine.render = counted
    return renders


def room_kwargs(engine, request):
    """What the room asks the pipeline for, for a checked request (the photo fitted as the engine does), and the pipeline."""
    checked = check(request)
    knobs = checked.knobs
    pipe = engine.load(checked.source)
    photo = fit(checked.photo, knobs.width, knobs.height, knobs.fit)
    return checked, checked.family.call_kwargs(pipe, knobs, photo, None), pipe


# ---------------------------------------------------------------------- the family as data
def test_the_family_says_what_it_does():
    family = get_family(LONG)
    assert family.long_video and family.multi_prompt and not family.end_frame and not family.keyframes
    assert family.hub_id == "Lightricks/LTX-Video-0.9.8-13B-distilled"
    assert (family.height, family.width, family.num_frames, family.frame_rule) == (512, 704, 161, "8n+1")
    # The pipeline's own defaults (its __call__ and docstring example)
    assert (family.num_inference_steps, family.guidance_scale, family.temporal_tile_size, family.temporal_overlap,
            family.adain_factor, family.cond_strength) == (8, 1.0, 80, 24, 0.25, 0.5)  # fmt: skip
    assert (family.decode_horizontal_tiles, family.decode_vertical_tiles, family.decode_overlap) == (4, 4, 3)
    assert family.sigmas_for(8) == family.sigmas and len(family.sigmas) == 9 and family.sigmas[-1] == 0.0
    assert family.sigmas_for(2) == [1.0, 0.975, 0.0]  # another count: the published curve at that many points
    assert [len(family.windows(n)) for n in (9, 81, 161, 361)] == [1, 2, 3, 7]
    assert not get_family("ltx-video").multi_prompt and not get_family("framepack").multi_prompt


def test_windows_are_the_pipelines(tiny_tiles):
    from diffusers.pipelines.ltx.pipeline_ltx_i2v_long_multi_prompt import split_into_temporal_windows

    for family in (get_family(LONG), tiny_tiles):
        tile, overlap = family.temporal_tile_size // 8, family.temporal_overlap // 8
        for frames in range(1, 1018, 8):
            assert family.windows(frames) == split_into_temporal_windows((frames - 1) // 8 + 1, tile, overlap, 8)


@pytest.mark.parametrize(("change", "words"), [
    (dict(temporal_overlap=16), "a frame too many per window"),
    (dict(temporal_tile_size=84), "multiples of 8"),
    (dict(temporal_overlap=80), "the overlap smaller"),
    (dict(num_inference_steps=6), "steps of sigmas"),
    (dict(sigmas=[1.0, 0.5, 0.7, 0.0]), "fall from 1.0 to a terminal 0.0"),
])  # fmt: skip
def test_tiles_and_schedules_that_would_break_the_pipeline_are_refused_when_read(change, words):
    family = get_family(LONG)
    with pytest.raises(ValidationError, match=words):
        type(family)(**{**family.model_dump(), **change})


def test_prompts_take_equal_shares_of_the_windows_in_order():
    family = get_family(LONG)
    assert family.prompt_schedule(["a", "b", "c"], 361) == [  # 7 windows
        {"start_window": 0, "end_window": 1, "text": "a"}, {"start_window": 2, "end_window": 3, "text": "b"},
        {"start_window": 4, "end_window": 6, "text": "c"}]  # fmt: skip
    assert family.prompt_schedule(["one | two"], 161) == [{"start_window": 0, "end_window": 2, "text": "one | two"}]


def test_small_videos_get_fewer_decode_tiles():
    family = get_family(LONG)
    assert [family.decode_tiles(latent, 4) for latent in (1, 2, 4, 6, 7, 16, 22)] == [1, 1, 1, 3, 4, 4, 4]


# ---------------------------------------------------------------------- one call, the prompts in order
def test_three_prompts_in_one_call_over_several_windows(engine, tiny_models, tiny_tiles, chelsea):
    request = tiny_request(chelsea, tiny_models[LONG])
    checked, kwargs, pipe = room_kwargs(engine, request)
    assert [s["text"] for s in kwargs["prompt_segments"]] == PROMPTS
    assert [(s["start_window"], s["end_window"]) for s in kwargs["prompt_segments"]] == [(0, 0), (1, 2), (3, 4)]
    assert kwargs["cond_image"].tobytes() == fit(checked.photo, 64, 64, "crop").tobytes() and "image" not in kwargs
    assert (kwargs["num_frames"], kwargs["temporal_tile_size"], kwargs["temporal_overlap"]) == (41, 16, 8)
    assert (kwargs["seed"], kwargs["frame_rate"], kwargs["sigmas"]) == (7, 25, [1.0, 0.975, 0.0])  # the fps it makes
    assert (kwargs["decode_horizontal_tiles"], kwargs["decode_vertical_tiles"], kwargs["adain_factor"]) == (1, 1, 0.25)
    assert type(pipe.scheduler).__name__ == "LTXEulerAncestralRFScheduler"  # swapped in at load, as the docstring does

    # The real pipeline encodes each window's prompt: read what its text encoder is given (a spy, not a mock)
    encoded = []
    hook = pipe.text_encoder.register_forward_pre_hook(
        lambda module, args: encoded.append(pipe.tokenizer.decode(args[0][0], skip_special_tokens=True)))
    steps, renders = [], count_renders(engine)
    try:
        result = engine.generate(request, on_progress=steps.append)
    finally:
        hook.remove()
    assert renders == [41]  # one call: the segments are not chained
    assert encoded == [PROMPTS[0], PROMPTS[1], PROMPTS[1], PROMPTS[2], PROMPTS[2]]  # window by window, in order

    video, meta = read_mp4(result.path)
    assert video.shape == (41, 64, 64, 3) and result.num_frames == 41 and meta["fps"] == 25
    assert [(s.prompt, s.seed) for s in result.segments] == [(p, 7) for p in PROMPTS]  # one seed applies to all
    assert result.prompt == PROMPTS[0] and result.seed == 7 and result.segment_frames == 41
    data = json.loads(result.metadata_path.read_text())
    assert [s["prompt"] for s in data["segments"]] == PROMPTS
    denoising = [p for p in steps if p.stage == "denoising"]
    assert [p.step for p in denoising] == list(range(1, 11)) and {p.total for p in denoising} == {10}  # 5 x 2
    assert all(p.segments == 1 for p in steps)  # one call: no "segment 2 of 3"


def test_a_duration_makes_one_call_and_keeps_the_segments(engine, tiny_models, tiny_tiles, chelsea):
    request = tiny_request(chelsea, tiny_models[LONG], num_frames=None, duration=1.6)  # 40 frames at 25 fps
    checked = check(request)
    assert checked.knobs.num_frames == 41 and checked.total_frames == 40 and checked.last_segment_frames is None
    assert [s.prompt for s in checked.knobs.segments] == PROMPTS
    renders = count_renders(engine)
    result = engine.generate(request)
    assert renders == [41]  # one call of the duration's frames, trimmed to them
    assert result.num_frames == 40 == len(read_mp4(result.path)[0]) and len(result.segments) == 3
    assert not any(a.code == "request.segments_for_duration" for a in result.adjustments)

    one_prompt = check(tiny_request(chelsea, tiny_models[LONG], segments=[], prompt="a cat", num_frames=None,
                                    duration=1.6))  # fmt: skip
    assert one_prompt.knobs.num_frames == 41 and one_prompt.knobs.segments == []
    with pytest.raises(InvalidInput, match=r"in one call.* 64 s at 25 fps is 1600 frames, more than that call's 1017"):
        check(tiny_request(chelsea, tiny_models[LONG], num_frames=None, duration=64.0))
    with pytest.raises(InvalidInput, match="1.92 s at 25 fps is 48 frames, more than that call's 41"):
        check(tiny_request(chelsea, tiny_models[LONG], duration=1.92))  # num_frames and a longer duration


def test_one_seed_applies_to_every_segment(tiny_models, tiny_tiles, chelsea):
    model = tiny_models[LONG]
    given = [{"prompt": "a", "seed": 5}, {"prompt": "b"}, {"prompt": "c", "seed": 5}]
    checked = check(tiny_request(chelsea, model, segments=given, seed=None))
    assert checked.knobs.seed == 5 and [s.seed for s in checked.knobs.segments] == [5, 5, 5]
    unseeded = check(tiny_request(chelsea, model, seed=None))
    assert len({s.seed for s in unseeded.knobs.segments} | {unseeded.knobs.seed}) == 1  # the random one, for all
    with pytest.raises(InvalidInput, match="segment 3's seed 9 cannot apply; give the seed to the video or to the first"):
        check(tiny_request(chelsea, model, segments=[{"prompt": "a"}, {"prompt": "b"}, {"prompt": "c", "seed": 9}]))


def test_more_prompts_than_windows_are_refused_before_it_loads(tiny_models, chelsea):
    with pytest.raises(InvalidInput, match="9 frames make 1 windows of 80 frames sharing 24, too few for 3 segment"):
        check(tiny_request(chelsea, tiny_models[LONG], num_frames=9))
    assert len(check(tiny_request(chelsea, tiny_models[LONG], num_frames=161)).knobs.segments) == 3  # 3 windows


def test_frames_and_sizes_follow_the_rule(tiny_models, chelsea):
    checked = check(tiny_request(chelsea, tiny_models[LONG], segments=[], prompt="a", num_frames=30, height=100))
    assert (checked.knobs.num_frames, checked.knobs.height) == (33, 96)
    assert {a.code for a in checked.adjustments} >= {"request.frames_rounded", "request.size_rounded"}


def test_a_bar_in_a_prompt_is_not_a_schedule(engine, tiny_models, chelsea):
    _, kwargs, _ = room_kwargs(engine, tiny_request(chelsea, tiny_models[LONG], segments=[], prompt="a | b",
                                                    num_frames=9, height=32, width=32))  # fmt: skip
    assert kwargs["prompt_segments"] == [{"start_window": 0, "end_window": 0, "text": "a | b"}]
    assert kwargs["adain_factor"] == 0.0  # 32x32 is one latent pixel: AdaIN's spread would be NaN


def test_cancel_at_a_step_leaves_no_file(engine, tiny_models, tiny_tiles, chelsea, tmp_path):
    cancel, seen = threading.Event(), []

    def stop_in_the_second_window(progress):
        seen.append(progress.step)
        if progress.stage == "denoising" and progress.step >= 3:
            cancel.set()

    with pytest.raises(Cancelled):
        engine.generate(tiny_request(chelsea, tiny_models[LONG]), on_progress=stop_in_the_second_window, cancel=cancel)
    assert max(seen) == 3
    assert not [p for p in (tmp_path / "outputs").rglob("*") if p.is_file()]


# ---------------------------------------------------------------------- folders
def bare_copy(folder, where, name, class_name=None, marker=None):
    index = json.loads((folder / "model_index.json").read_text())
    index.pop(FAMILY_MARKER)
    if class_name:
        index["_class_name"] = class_name
    if marker:
        index[FAMILY_MARKER] = marker
    copy = where / name
    copy.mkdir()
    (copy / "model_index.json").write_text(json.dumps(index))
    for part in ("transformer", "vae"):
        (copy / part).symlink_to(folder / part)
    return copy


def test_folder_is_recognised_with_and_without_our_marker(tiny_models, tmp_path):
    folder = tiny_models[LONG]
    assert json.loads((folder / "model_index.json").read_text())["_class_name"] == "LTXI2VLongMultiPromptPipeline"
    assert resolve(str(folder)).family.id == LONG
    assert resolve(str(bare_copy(folder, tmp_path, "saved"))).family.id == LONG  # its class: no other family's


def test_a_copy_of_the_published_weights_is_the_condition_familys_unless_marked(tiny_models, tmp_path):
    # Lightricks/LTX-Video-0.9.8-13B-distilled is published as an LTXConditionPipeline: the same class as
    # ltx-video-condition's, whose room takes 0.9.7 and 0.9.8 folders. The marker picks this family.
    published = bare_copy(tiny_models[LONG], tmp_path, "LTX-Video-0.9.8-13B-distilled", "LTXConditionPipeline")
    assert resolve(str(published)).family.id == "ltx-video-condition"
    marked = bare_copy(tiny_models[LONG], tmp_path, "marked", "LTXConditionPipeline", marker=LONG)
    assert resolve(str(marked)).family.id == LONG


def test_a_storyboard_for_the_long_model_has_a_prompt_per_window(tiny_models, chelsea):
    from i2v.checks import check, storyboard_shape

    checked = check(GenerationRequest(image=chelsea, model=str(tiny_models["ltx-video-long"]), duration=6.4, fps=25,
                                      height=64, width=64))  # fmt: skip
    count, seconds = storyboard_shape(checked)
    assert checked.knobs.segments == [] and count == get_family("ltx-video-long").prompt_slots(checked.knobs.num_frames)
    assert count >= 2 and seconds * count == pytest.approx(6.4, abs=0.05)
