"""Several subjects from references: photos and MP4 clips read (i2v/references.py), refused where a
rule is broken, and carried through Wan 2.1 VACE's tiny model (i2v/families/wan_vace.py) into a video
of exactly the frames asked for, decoded back."""

from __future__ import annotations

import json
import subprocess
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from PIL import Image

from i2v.checks import check
from i2v.engine import VideoEngine
from i2v.errors import InvalidInput
from i2v.export import read_comment, read_mp4, write_mp4
from i2v.families import FAMILY_MARKER, get_family, resolve
from i2v.families.wan_vace import conditioning
from i2v.references import MAX_REFERENCE_IMAGES, even_indices, fit_reference, open_references, read_clip_frames
from i2v.request import GenerationRequest, Reference

VACE, VACE_14B = "wan-vace-1.3b", "wan-vace-14b"


def tiny_request(photo, model, **overrides) -> GenerationRequest:
    fields = dict(image=photo, prompt="the cat sniffs the cup", negative_prompt="blurry", model=str(model),
                  height=32, width=48, num_frames=9, num_inference_steps=2, seed=7)  # fmt: skip
    return GenerationRequest(**{**fields, **overrides})


def clip(path, levels, size=(32, 32), fps=8):
    """An MP4 of solid grey frames, one per level (0-255), written as the product writes videos."""
    frames = np.stack([np.full((*size, 3), level, np.uint8) for level in levels])
    return write_mp4(frames, path, fps, {})


def ffmpeg(*args):
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", *args], check=True)


@pytest.fixture
def engine(tmp_path):
    return VideoEngine(tmp_path / "outputs")


@contextmanager
def watching(engine, folder):
    """What the tiny VACE model's transformer is given at each step, (latents, control stream), while
    the engine runs: the pipeline generate() uses (loaded with the same placement on a CPU)."""
    pipe, seen = engine.load(resolve(str(folder))), []

    def record(module, args, kwargs):
        seen.append((kwargs["hidden_states"].detach().clone(), kwargs["control_hidden_states"].detach().clone()))

    hook = pipe.transformer.register_forward_pre_hook(record, with_kwargs=True)
    try:
        yield seen
    finally:
        hook.remove()


# ---------------------------------------------------------------------- reading references
def test_even_indices_are_the_middles_of_equal_parts():
    assert even_indices(100, 3) == [16, 50, 83]
    assert even_indices(12, 3) == [2, 6, 10]
    assert even_indices(10, 1) == [5]
    assert even_indices(2, 3) == [0, 1] and even_indices(0, 3) == []
    for count in range(1, 60):
        for wanted in (1, 2, 3):
            picked = even_indices(count, wanted)
            assert picked == sorted(set(picked)) and all(0 <= index < count for index in picked)
            assert len(picked) == min(count, wanted)
            part = count / wanted  # each pick within a frame of its part's middle, the gaps equal to a frame
            assert all(abs(index - (k + 0.5) * part) < 1 for k, index in enumerate(picked)), (count, wanted, picked)
            if len(picked) > 1 and count >= wanted:
                assert np.ptp(np.diff(picked)) <= 1, (count, wanted, picked)


def test_a_clip_gives_its_evenly_spaced_frames(tmp_path):
    levels = [20 * index for index in range(12)]
    frames, total = read_clip_frames(clip(tmp_path / "steps.mp4", levels), 3)
    assert total == 12 and [frame.size for frame in frames] == [(32, 32)] * 3
    means = [float(np.asarray(frame).mean()) for frame in frames]
    assert means == pytest.approx([levels[2], levels[6], levels[10]], abs=6)  # H.264 keeps flat greys nearly exact


def test_photos_and_clips_share_the_reference_budget(tmp_path, chelsea, coffee):
    one, two = clip(tmp_path / "one.mp4", range(0, 240, 20)), clip(tmp_path / "two.mp4", range(0, 240, 20))
    references = [Reference(source=chelsea, label="the cat"), Reference(source=one, label="the dancer"),
                  Reference(source=coffee, label="the cup"), Reference(source=two, label="the street")]  # fmt: skip
    images, notes = open_references(references)
    labels = [label for label, _ in images]
    assert labels == ["the cat", "the dancer", "the dancer", "the cup", "the street", "the street"]
    assert len(images) == MAX_REFERENCE_IMAGES and all(image.mode == "RGB" for _, image in images)
    assert [(n.code, n.params["count"], n.params["total"]) for n in notes if n.code == "reference.clip_sampled"] == [
        ("reference.clip_sampled", 2, 12), ("reference.clip_sampled", 2, 12)]  # fmt: skip
    lone, _ = open_references([Reference(source=one, label="alone")])
    assert len(lone) == 3  # a clip alone gives FRAMES_PER_CLIP
    with pytest.raises(InvalidInput, match="7 references: at most 6") as refused:
        open_references([Reference(source=chelsea)] * 7)
    assert refused.value.code == "reference.too_many"


def test_a_reference_fits_inside_the_video_uncropped():
    wide = Image.new("RGB", (400, 100), (200, 10, 10))
    fitted = fit_reference(wide, 48, 32)
    assert fitted.size == (48, 12)
    assert fit_reference(Image.new("RGB", (48, 20)), 48, 32).size == (48, 20)  # already fits: left as it is


def make_bad(kind, tmp_path, chelsea):
    path = tmp_path / {"text": "notes.png", "empty": "empty.jpg", "no_frames": "blank.mp4", "sound_only": "sound.mp4",
                       "cut_short": "header.mp4", "truncated": "cut.mp4", "missing": "gone.png", "long": "long.mp4",
                       "big": "big.mp4"}[kind]  # fmt: skip
    if kind == "text":
        path.write_text("a shopping list, not a photo")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "no_frames":  # an MP4 with its video stream's frames left out: nothing to sample
        ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=32x32:r=8", "-t", "1", "-frames:v", "0", str(path))
    elif kind == "sound_only":
        ffmpeg("-f", "lavfi", "-i", "anullsrc", "-t", "1", "-c:a", "aac", str(path))
    elif kind == "cut_short":  # its header only: the container opens, with no video stream in it
        path.write_bytes(clip(tmp_path / "whole.mp4", [50] * 8).read_bytes()[:300])
    elif kind == "truncated":  # its index and half its frames' data: ffmpeg cannot open it
        whole = clip(tmp_path / "whole.mp4", [50] * 8).read_bytes()
        path.write_bytes(whole[: len(whole) // 2])
    elif kind == "long":
        clip(path, [100] * 31, size=(16, 16), fps=1)  # 31 s
    elif kind == "big":
        clip(path, [100], size=(16, 3856))  # wider than 4K UHD
    return path


@pytest.mark.parametrize(("kind", "code", "words"), [
    ("text", "reference.unreadable", "neither a photo"),
    ("empty", "reference.empty", r"empty \(0 bytes\)"),
    ("no_frames", "reference.clip_no_frames", "has no video frames"),
    ("sound_only", "reference.clip_no_frames", "has no video frames"),
    ("cut_short", "reference.clip_no_frames", "has no video frames we can read"),
    ("truncated", "reference.clip_damaged", "damaged or truncated"),
    ("missing", "reference.missing", "does not exist"),
    ("long", "reference.clip_too_long", "lasts 31.0 s: a reference clip may last at most 30 s"),
    ("big", "reference.clip_too_big", "3856x16: a reference clip's frames may be at most 3840x2160"),
])  # fmt: skip
def test_a_bad_reference_is_refused_in_the_check_step(kind, code, words, tiny_models, tmp_path, chelsea):
    bad = make_bad(kind, tmp_path, chelsea)
    request = tiny_request(chelsea, tiny_models[VACE], references=[Reference(source=bad, label="who")])
    with pytest.raises(InvalidInput, match=words) as refused:
        check(request)
    assert refused.value.code == code
    said = str(refused.value)
    assert bad.name in said and str(tmp_path) not in said and "Traceback" not in said


def test_references_are_refused_for_a_family_without_them_before_loading(engine, chelsea, coffee):
    # No weights of this family are here: a refusal that came after loading would be ModelNotAvailable.
    request = tiny_request(chelsea, "wan2.1-i2v-14b-480p", references=[Reference(source=coffee, label="the cup")])
    with pytest.raises(InvalidInput) as refused:
        engine.generate(request)
    assert refused.value.code == "reference.not_supported"
    assert "wan2.1-i2v-14b-480p takes no reference images" in str(refused.value)
    assert refused.value.message.params["families"] == f"{VACE}, {VACE_14B}"
    with pytest.raises(InvalidInput, match="camera takes no reference images"):
        check(tiny_request(chelsea, "camera", references=[Reference(source=coffee)]))


# ---------------------------------------------------------------------- through the engine
def test_references_go_into_the_video(engine, tiny_models, tmp_path, chelsea, coffee):
    folder = tiny_models[VACE]
    dancer = clip(tmp_path / "dancer.mp4", range(0, 240, 20))
    references = [Reference(source=coffee, label="the cup"), Reference(source=dancer, label="the dancer")]
    with watching(engine, folder) as seen:
        plain = engine.generate(tiny_request(chelsea, folder, num_frames=17))
        result = engine.generate(tiny_request(chelsea, folder, references=references, num_frames=17))

    # 17 frames are 5 latent frames; the photo and the clip's 3 frames add one each, dropped before decoding.
    assert sorted({latents.shape[2] for latents, _ in seen}) == [5, 5 + 1 + 3]
    control = seen[-1][1]  # VACE's control stream: the video's latents kept and made (16 + 16), its mask (64)
    assert control.shape[2] == 9 and (control[:, 32:, :4] == 0).all()  # the references' mask: keep them whole
    refs = control[0, :16, :4]
    assert all(not torch.equal(refs[:, i], refs[:, j]) for i in range(4) for j in range(i + 1, 4))  # four subjects
    frames, meta = read_mp4(result.path)
    assert frames.shape == (17, 32, 48, 3) and (result.num_frames, result.height, result.width) == (17, 32, 48)
    assert read_mp4(plain.path)[0].shape == (17, 32, 48, 3)
    listed = [{"file": "coffee.png", "label": "the cup"}, {"file": "dancer.mp4", "label": "the dancer"}]
    assert result.metadata()["references"] == listed
    assert read_comment(result.path)["references"] == listed  # in the MP4 too, by file name only
    assert json.loads(result.metadata_path.read_text())["references"] == listed
    assert str(tmp_path) not in result.metadata_path.read_text()
    sampled = [n for n in result.adjustments if n.code == "reference.clip_sampled"]
    assert [(n.params["name"], n.params["count"], n.params["total"]) for n in sampled] == [("dancer.mp4", 3, 12)]


def test_more_references_than_latent_frames_are_refused(tiny_models, tmp_path, chelsea, coffee):
    # Each reference takes a latent frame and diffusers' VACE pads its mask from the video's own: at
    # most one reference per latent frame (9 frames: 3).
    dancer = clip(tmp_path / "dancer.mp4", range(0, 240, 20))
    references = [Reference(source=coffee, label="the cup"), Reference(source=dancer, label="the dancer")]
    with pytest.raises(InvalidInput, match="at most 3 reference images in a video of 9 frames") as refused:
        check(tiny_request(chelsea, tiny_models[VACE], references=references))
    assert refused.value.code == "reference.too_few_frames" and refused.value.message.params["minimum"] == 13
    enough = check(tiny_request(chelsea, tiny_models[VACE], references=references, num_frames=13))
    assert [label for label, _ in enough.reference_photos] == ["the cup"] + ["the dancer"] * 3


def test_out_of_memory_never_steps_down_below_what_the_references_need(engine, tmp_path, chelsea, coffee):
    from i2v.errors import OutOfMemory
    from messages import note

    # Four reference images (the photo, the clip's 3 frames) need 13 frames; a plan already at sequential
    # offload with tiling steps down by frames first (to 2/3), and its smaller size keeps that cut.
    dancer = clip(tmp_path / "dancer.mp4", range(0, 240, 20))
    references = [Reference(source=coffee, label="the cup"), Reference(source=dancer, label="the dancer")]
    failure = note("memory.oom", model=VACE, width=48, height=32, num_frames=13, placement="sequential offload")
    for frames, after in ((21, 13), (13, None)):
        checked = check(tiny_request(chelsea, VACE, references=references, num_frames=frames,
                                     memory_strategy="sequential", vae_tiling=True))  # fmt: skip
        assert len(checked.reference_photos) == 4
        if after is not None:  # 21 frames to 13: enough for four
            stepped, change = engine._step_down(checked, failure)
            assert stepped.knobs.num_frames == after and str(change) == "num_frames 13"
            continue
        with pytest.raises(OutOfMemory) as refused:  # 13 to 9 would fail on a shape: the first failure stands
            engine._step_down(checked, failure)
        assert refused.value.message == failure


def test_vace_ends_on_a_given_photo(engine, tiny_models, chelsea, coffee):
    photo, last = Image.new("RGB", (48, 32), (250, 0, 0)), Image.new("RGB", (48, 32), (0, 0, 250))
    video, mask = conditioning(photo, last, 9)
    assert video[0] is photo and video[-1] is last and len(video) == len(mask) == 9
    assert all(np.asarray(frame).tolist() == np.full((32, 48, 3), 128).tolist() for frame in video[1:-1])
    assert [int(np.asarray(m).max()) for m in mask] == [0] + [255] * 7 + [0]  # black: keep; white: make
    assert conditioning(photo, None, 5)[1][-1].getextrema() == (255, 255)

    folder = tiny_models[VACE]
    assert get_family(VACE).end_frame
    with watching(engine, folder) as seen:
        engine.generate(tiny_request(chelsea, folder))
        ended = engine.generate(tiny_request(chelsea, folder, last_image=coffee))
    assert read_mp4(ended.path)[0].shape == (9, 32, 48, 3) and ended.last_image == coffee
    # The end photo reaches the model in the last latent frame of the kept video (the VAE encodes
    # causally: the frames before it are as they were). The tiny model's output hardly moves with
    # its conditioning (1e-4), below what an 8-bit video keeps, so the control stream is compared.
    plain_control, ended_control = seen[0][1][:, :16], seen[-1][1][:, :16]
    assert torch.equal(plain_control[:, :, :2], ended_control[:, :, :2])
    assert not torch.equal(plain_control[:, :, 2], ended_control[:, :, 2])


# ---------------------------------------------------------------------- the two sizes
def test_folders_tell_the_two_sizes_apart_by_their_transformer(tiny_models, tmp_path):
    for family_id in (VACE, VACE_14B):
        folder = tiny_models[family_id]
        index = json.loads((folder / "model_index.json").read_text())
        index.pop(FAMILY_MARKER)
        bare = tmp_path / f"a-folder-named-nothing-{family_id[-3:]}"  # the name says neither size
        bare.mkdir()
        (bare / "model_index.json").write_text(json.dumps(index))
        (bare / "transformer").symlink_to(folder / "transformer")
        assert resolve(str(bare)).family.id == family_id
    fun = tmp_path / "vace-fun-a14b"  # Wan 2.2 VACE-Fun A14B: two experts, neither family
    fun.mkdir()
    two_experts = {**index, "transformer_2": ["diffusers", "WanVACETransformer3DModel"]}
    (fun / "model_index.json").write_text(json.dumps(two_experts))
    with pytest.raises(InvalidInput, match="no supported image-to-video pipeline"):
        resolve(str(fun))


def test_the_14b_shift_follows_the_size(engine, tiny_models, chelsea):
    family = get_family(VACE_14B)
    assert (family.flow_shift, family.flow_shift_480p, family.height, family.width) == (5.0, 3.0, 720, 1280)
    pipe = engine.load(resolve(str(tiny_models[VACE_14B])))
    for (height, width), shift in (((720, 1280), 5.0), ((480, 832), 3.0), ((32, 48), 3.0), ((720, 1280), 5.0)):
        knobs = check(tiny_request(chelsea, tiny_models[VACE_14B], height=height, width=width)).knobs
        photo = Image.new("RGB", (width, height))
        kwargs = family.call_kwargs(pipe, knobs, photo, None, (), references=[])
        assert pipe.scheduler.config.flow_shift == shift, (height, width)
        assert kwargs["reference_images"] is None and "image" not in kwargs and len(kwargs["video"]) == 9


def test_a_reference_flag_is_a_path_and_a_label_or_a_path_holding_an_equals_sign(tmp_path):
    from i2v.cli import _reference

    odd = tmp_path / "astro=1.png"
    odd.write_bytes(b"x")
    assert _reference(f"{tmp_path}/cat.png=the grey cat").label == "the grey cat"
    assert _reference(str(odd)).source == odd and _reference(str(odd)).label == ""  # the file exists: all of it is the path
    with pytest.raises(InvalidInput):
        _reference("=a label alone")
