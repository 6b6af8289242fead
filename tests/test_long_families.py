"""The long-video families on their tiny models, through the engine: Wan 2.1 FLF2V (first and last
frame), LTX-Video 0.9.5 with keyframes, FramePack (sections) and SkyReels-V2 DF (windows)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from i2v.checks import check
from i2v.engine import VideoEngine
from i2v.errors import InvalidInput, ModelNotAvailable
from i2v.export import read_mp4
from i2v.families import FAMILY_MARKER, get_family, resolve
from i2v.images import fit
from i2v.request import GenerationRequest, Keyframe

FLF2V, LTX, FRAMEPACK = "wan2.1-flf2v-14b-720p", "ltx-video-condition", "framepack"
SKYREELS, SKYREELS_14B = "skyreels-v2-df-1.3b-540p", "skyreels-v2-df-14b-540p"
NEW = [FLF2V, LTX, FRAMEPACK, SKYREELS, SKYREELS_14B]
FEWEST = {FLF2V: 9, LTX: 9, FRAMEPACK: 37, SKYREELS: 9, SKYREELS_14B: 9}  # a short clip each can make


def tiny_request(photo, model, **overrides) -> GenerationRequest:
    # fps None: the model's own, so the frames made are the file's (another fps retimes them)
    fields = dict(image=photo, prompt="a cat slowly turns its head", negative_prompt="blurry", model=str(model),
                  height=32, width=32, num_frames=9, fps=None, num_inference_steps=2, seed=7)  # fmt: skip
    return GenerationRequest(**{**fields, **overrides})


@pytest.fixture
def engine(tmp_path):
    return VideoEngine(tmp_path / "outputs")


def room_kwargs(engine, request, keyframes=()):
    """What the family's room asks the pipeline for, for a checked request (photos fitted as the engine does)."""
    checked = check(request)
    knobs = checked.knobs

    def fitted(photo):
        return fit(photo, knobs.width, knobs.height, knobs.fit)

    pipe = engine.load(checked.source)
    last = fitted(checked.last_photo) if checked.last_photo is not None else None
    keyframes = [(frame, fitted(photo)) for frame, photo in keyframes]
    return checked, checked.family.call_kwargs(pipe, knobs, fitted(checked.photo), last, keyframes)


def test_the_families_say_what_they_can_do():
    assert [get_family(f).end_frame for f in NEW] == [True, True, True, False, False]
    assert [get_family(f).keyframes for f in NEW] == [False, True, False, False, False]
    assert [get_family(f).long_video for f in NEW] == [False, False, True, True, True]
    assert not get_family("svd-xt").chains_well and not get_family("i2vgen-xl").chains_well
    assert get_family(SKYREELS).max_frames >= 737 and get_family(FRAMEPACK).max_frames > 900


@pytest.mark.parametrize("family_id", NEW)
def test_family_end_to_end(family_id, engine, tiny_models, chelsea, coffee):
    steps = []
    frames = FEWEST[family_id]
    last = {"last_image": coffee} if family_id == FLF2V else {}
    result = engine.generate(tiny_request(chelsea, tiny_models[family_id], num_frames=frames, **last),
                             on_progress=steps.append)  # fmt: skip

    video, meta = read_mp4(result.path)
    assert video.shape == (frames, 32, 32, 3)
    fps = get_family(family_id).fps
    assert (result.num_frames, result.height, result.width, result.fps) == (frames, 32, 32, fps)
    assert result.family == family_id and meta["fps"] == fps
    denoising = [p for p in steps if p.stage == "denoising"]
    assert [p.step for p in denoising] == [1, 2] and denoising[-1].total == 2


def bare_copy(folder, where, name, class_name=None, parts=("transformer",)):
    """A folder like `folder` without our marker: model_index.json (its class changed if asked) and links to `parts`."""
    index = json.loads((folder / "model_index.json").read_text())
    index.pop(FAMILY_MARKER)
    if class_name:
        index["_class_name"] = class_name
    copy = where / name
    copy.mkdir()
    (copy / "model_index.json").write_text(json.dumps(index))
    for part in parts:
        (copy / part).symlink_to(folder / part)
    return copy


def test_wan21_720p_leaves_flf2v_folders_alone(tiny_models, tmp_path):
    # FLF2V is the I2V 14B config at 720p plus a two-image position embedding: the name alone cannot tell.
    flf2v = bare_copy(tiny_models[FLF2V], tmp_path, "Wan2.1-FLF2V-14B-720P-diffusers")
    assert resolve(str(flf2v)).family.id == FLF2V
    i2v = bare_copy(tiny_models["wan2.1-i2v-14b-720p"], tmp_path, "Wan2.1-I2V-14B-720P-Diffusers")
    assert resolve(str(i2v)).family.id == "wan2.1-i2v-14b-720p"


def test_ltx_095_published_as_ltx_pipeline_is_the_condition_family(tiny_models, tmp_path):
    # Lightricks/LTX-Video-0.9.5 is published as an LTXPipeline; its VAE has 0.9.5's encoder blocks.
    published = bare_copy(tiny_models[LTX], tmp_path, "LTX-Video-0.9.5", "LTXPipeline", parts=("transformer", "vae"))
    assert resolve(str(published)).family.id == LTX
    older = bare_copy(tiny_models["ltx-video"], tmp_path, "LTX-Video", "LTXPipeline", parts=("transformer", "vae"))
    with pytest.raises(InvalidInput, match="LTXPipeline, which is no supported"):
        resolve(str(older))


def test_skyreels_published_as_the_text_to_video_class(tiny_models, tmp_path):
    # The DF checkpoints serve text-, image- and video-to-video alike; the 14B is told by its 40 heads.
    for family_id in (SKYREELS, SKYREELS_14B):
        published = bare_copy(tiny_models[family_id], tmp_path, family_id, "SkyReelsV2DiffusionForcingPipeline")
        assert resolve(str(published)).family.id == family_id


# ---------------------------------------------------------------------- first and last frame
def test_flf2v_receives_the_last_photo_and_needs_it(engine, tiny_models, chelsea, coffee):
    model = tiny_models[FLF2V]
    checked, kwargs = room_kwargs(engine, tiny_request(chelsea, model, last_image=coffee))
    assert kwargs["last_image"].size == kwargs["image"].size == (32, 32)
    assert kwargs["last_image"].tobytes() == fit(checked.last_photo, 32, 32, checked.knobs.fit).tobytes()
    assert kwargs["last_image"].tobytes() != kwargs["image"].tobytes()
    assert engine.load(checked.source).scheduler.config.flow_shift == 16.0  # Wan's shift for FLF2V, set at load
    with pytest.raises(InvalidInput, match=f"{FLF2V} makes the frames between two photos: give it a last photo"):
        engine.generate(tiny_request(chelsea, model))
    assert not engine.output_dir.exists() or not list(engine.output_dir.glob("*.mp4"))


def test_framepack_receives_the_last_photo_and_makes_sections(engine, tiny_models, chelsea, coffee):
    request = tiny_request(chelsea, tiny_models[FRAMEPACK], num_frames=73, last_image=coffee)
    checked, kwargs = room_kwargs(engine, request)
    assert kwargs["last_image"].tobytes() == fit(checked.last_photo, 32, 32, checked.knobs.fit).tobytes()
    assert kwargs["sampling_type"] == "inverted_anti_drifting" and kwargs["latent_window_size"] == 9
    assert kwargs["num_frames"] == 2 * 33  # two sections, as the pipeline counts them

    steps = []
    result = engine.generate(request, on_progress=steps.append)
    assert read_mp4(result.path)[0].shape == (73, 32, 32, 3)
    denoising = [p for p in steps if p.stage == "denoising"]
    assert [p.step for p in denoising] == [1, 2, 3, 4] and denoising[-1].total == 4  # 2 steps x 2 sections


def test_framepack_frames_are_whole_sections(chelsea, tiny_models):
    checked = check(tiny_request(chelsea, tiny_models[FRAMEPACK], num_frames=90))
    assert checked.knobs.num_frames == 73
    assert any("36n+1" in str(note) for note in checked.adjustments)
    entry = get_family(FRAMEPACK).model_dump()
    with pytest.raises(ValidationError, match="frame_step must be 4 x latent_window_size"):
        type(get_family(FRAMEPACK))(**{**entry, "frame_step": 32})


def test_framepack_is_assembled_from_three_hub_repos(engine, tmp_path, chelsea):
    """As diffusers' docs show: the transformer and SigLIP come from their own repos, the rest from HunyuanVideo."""
    from huggingface_hub import constants

    from i2v.tiny import build_tiny

    family = get_family(FRAMEPACK)
    hub = tmp_path / "hf-home" / "hub"
    assert constants.HF_HUB_CACHE == str(hub)

    def snapshot(repo):
        folder = hub / f"models--{repo.replace('/', '--')}"
        (folder / "refs").mkdir(parents=True)
        (folder / "refs" / "main").write_text("0" * 40)
        return folder / "snapshots" / ("0" * 40)

    pipe = build_tiny(family)
    base = snapshot(family.hub_id)
    pipe.save_pretrained(base)
    index = json.loads((base / "model_index.json").read_text())
    for part in ("transformer", "image_encoder", "feature_extractor"):
        (base / part).rename(tmp_path / part)  # not in HunyuanVideo's repo
    del index["image_encoder"], index["feature_extractor"]
    index |= {"_class_name": "HunyuanVideoPipeline", "transformer": ["diffusers", "HunyuanVideoTransformer3DModel"]}
    (base / "model_index.json").write_text(json.dumps(index))
    redux = snapshot(family.image_encoder_repo)
    pipe.image_encoder.save_pretrained(redux / "image_encoder")
    pipe.feature_extractor.save_pretrained(redux / "feature_extractor")
    with pytest.raises(ModelNotAvailable, match=f"{family.transformer_repo} is not in the Hugging Face cache"):
        engine.generate(tiny_request(chelsea, FRAMEPACK, num_frames=37))
    pipe.transformer.save_pretrained(snapshot(family.transformer_repo))

    result = engine.generate(tiny_request(chelsea, FRAMEPACK, num_frames=37))
    assert result.model == FRAMEPACK and read_mp4(result.path)[0].shape == (37, 32, 32, 3)
    assert type(engine.load(resolve(FRAMEPACK)).transformer).__name__ == "HunyuanVideoFramepackTransformer3DModel"


# ---------------------------------------------------------------------- keyframes
def test_ltx_condition_puts_every_photo_at_its_frame(engine, tiny_models, chelsea, coffee):
    model = tiny_models[LTX]
    checked, kwargs = room_kwargs(engine, tiny_request(chelsea, model, num_frames=17, last_image=coffee),
                                  keyframes=[(12, checked_photo(coffee)), (5, checked_photo(chelsea))])  # fmt: skip
    conditions = kwargs["conditions"]
    assert [c.frame_index for c in conditions] == [0, 5, 12, 16]
    assert "image" not in kwargs and "last_image" not in kwargs
    first, last = fit(checked.photo, 32, 32, "crop"), fit(checked.last_photo, 32, 32, "crop")
    assert conditions[0].image.tobytes() == first.tobytes() and conditions[3].image.tobytes() == last.tobytes()
    assert conditions[2].image.tobytes() == fit(checked_photo(coffee), 32, 32, "crop").tobytes()
    assert kwargs["decode_timestep"] == 0.05 and kwargs["image_cond_noise_scale"] == 0.025
    assert kwargs["frame_rate"] == 24  # the fps it makes: LTX-Video's own

    _, kwargs = room_kwargs(engine, tiny_request(chelsea, model, num_frames=17),
                            keyframes=[(16, checked_photo(coffee))])  # fmt: skip
    assert [c.frame_index for c in kwargs["conditions"]] == [0, 16]  # without a last photo, a keyframe may end it


def checked_photo(path):
    from i2v.images import open_photo

    return open_photo(path)[0]


@pytest.mark.parametrize(("frames", "last", "message"), [
    ([17], False, r"keyframe at frame 17 is past the video's end: it has 17 frames \(0 to 17-1\)"),
    ([0], False, r"a keyframe at frame 0: frame 0 is the first photo's .* keyframes at frames 1 to 16"),
    ([16], True, r"a keyframe at frame 16: the last photo ends the video there; put keyframes at frames 1 to 15"),
    ([5, 5], False, r"two keyframes at frame 5"),
])  # fmt: skip
def test_ltx_condition_refuses_a_frame_it_cannot_take(frames, last, message):
    family = get_family(LTX)
    with pytest.raises(InvalidInput, match=message):
        family.condition_frames(17, last, frames)
    assert family.condition_frames(17, True, [1, 8, 15]) == [0, 1, 8, 15, 16]  # any index between: no multiple of 8


def test_ltx_condition_keyframes_through_the_engine(engine, tiny_models, chelsea, coffee):
    steps = []
    request = tiny_request(chelsea, tiny_models[LTX], num_frames=17, keyframes=[Keyframe(image=coffee, frame=8)],
                           last_image=coffee)  # fmt: skip
    result = engine.generate(request, on_progress=steps.append)
    assert read_mp4(result.path)[0].shape == (17, 32, 32, 3)
    assert [k.frame for k in result.keyframes] == [8]
    # what travels with the video names the photo, never this machine's folders
    assert result.metadata()["keyframes"] == [{"image": coffee.name, "frame": 8}]
    assert str(coffee.parent) not in result.metadata_path.read_text()
    with pytest.raises(InvalidInput, match="a keyframe at frame 16: the last photo ends the video there"):
        engine.generate(request.model_copy(update={"keyframes": [Keyframe(image=coffee, frame=16)]}))


# ---------------------------------------------------------------------- diffusion forcing
def test_skyreels_makes_more_frames_than_one_window_in_one_call(engine, tiny_models, chelsea):
    family = get_family(SKYREELS)
    request = tiny_request(chelsea, tiny_models[SKYREELS], num_frames=177)
    _, kwargs = room_kwargs(engine, request)
    assert kwargs["num_frames"] == 177 > kwargs["base_num_frames"] == 97
    assert (kwargs["overlap_history"], kwargs["addnoise_condition"], kwargs["ar_step"]) == (17, 20, 0)

    seen = []  # latent frames the denoiser sees at each call: never more than one window's 25
    pipe = engine.load(resolve(str(tiny_models[SKYREELS])))
    hook = pipe.transformer.register_forward_pre_hook(lambda m, a, k: seen.append(k["hidden_states"].shape[2]),
                                                      with_kwargs=True)  # fmt: skip
    steps = []
    try:
        result = engine.generate(request, on_progress=steps.append)
    finally:
        hook.remove()
    assert read_mp4(result.path)[0].shape == (177, 32, 32, 3)
    assert max(seen) == 25 and len(seen) == 2 * 2 * 2  # 2 windows x 2 steps x (prompt, negative)
    denoising = [p for p in steps if p.stage == "denoising"]
    assert [p.step for p in denoising] == [1, 2, 3, 4] and denoising[-1].total == 4
    assert [family.windows(n) for n in (97, 177, 257, 737)] == [1, 2, 3, 9]  # the README's 257: 3 windows


def test_skyreels_long_clips_are_whole_windows(chelsea, tiny_models):
    # diffusers 0.42.1 fails on a last window shorter than the others: counts past one window are whole windows.
    model = tiny_models[SKYREELS]
    assert check(tiny_request(chelsea, model, num_frames=93)).knobs.num_frames == 93
    checked = check(tiny_request(chelsea, model, num_frames=377))  # the README's 15 s: 3.5 windows
    assert checked.knobs.num_frames in (337, 417)
    assert any("97+80n (whole windows)" in str(note) for note in checked.adjustments)
    assert check(tiny_request(chelsea, model, num_frames=737)).knobs.num_frames == 737


def test_skyreels_takes_no_end_frame(engine, tiny_models, chelsea, coffee):
    with pytest.raises(InvalidInput, match=f"{SKYREELS} cannot end on a given frame"):
        engine.generate(tiny_request(chelsea, tiny_models[SKYREELS], last_image=coffee))


def test_framepack_says_it_reads_no_negative_prompt(tiny_models, chelsea):
    from i2v.checks import check

    checked = check(tiny_request(chelsea, tiny_models[FRAMEPACK], num_frames=37, negative_prompt="blurry"))
    assert checked.knobs.negative_prompt == "" and "request.no_negative_prompt" in [a.code for a in checked.adjustments]
