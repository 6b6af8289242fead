"""Video with sound: LTX-2's own sound (a tiny random-weight model loaded from its folder) and a
soundtrack laid under a video (trimmed or looped), each decoded back from the MP4 and compared."""

from __future__ import annotations

import json
import wave

import numpy as np
import pytest

from i2v.audio import Audio, lay_under
from i2v.checks import check
from i2v.engine import VideoEngine
from i2v.errors import InvalidInput
from i2v.export import read_audio, read_comment, read_mp4
from i2v.request import GenerationRequest

RATE = 48_000  # the soundtracks' rate here: the rate a soundtrack is decoded to, so samples compare one to one
AAC_FRAME = 1024  # samples: "within one audio frame"


def write_wav(path, samples: np.ndarray, rate: int = RATE):
    """`samples` (n,) or (channels, n) in [-1, 1] as a 16-bit PCM WAV."""
    samples = np.atleast_2d(samples)
    pcm = np.clip(np.rint(samples.T * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(samples.shape[0])
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return path


def sweep(seconds: float, rate: int = RATE) -> np.ndarray:
    """A rising tone, 200 to 2000 Hz: no stretch of it repeats, so a repeat found in the video is a loop."""
    t = np.arange(round(seconds * rate)) / rate
    return 0.5 * np.sin(2 * np.pi * (200 * t + 900 * t**2 / seconds))


def camera(photo, **overrides) -> GenerationRequest:
    fields = dict(image=photo, model="camera", camera_motion="zoom_in", height=32, width=32, num_frames=9, fps=8,
                  seed=1)  # fmt: skip
    return GenerationRequest(**{**fields, **overrides})


def similar(a: np.ndarray, b: np.ndarray) -> float:
    """How alike two stretches of sound are: their correlation, 1 for the same."""
    return float(np.corrcoef(a, b)[0, 1])


@pytest.fixture
def engine(tmp_path):
    return VideoEngine(tmp_path / "outputs")


def test_ltx2_makes_its_sound_with_the_video(engine, tiny_models, chelsea):
    request = GenerationRequest(image=chelsea, prompt="a cat meows at the door", model=str(tiny_models["ltx-2"]),
                                height=32, width=32, num_frames=9, num_inference_steps=2, seed=3)  # fmt: skip
    result = engine.generate(request)

    frames, meta = read_mp4(result.path)
    seconds = len(frames) / meta["fps"]
    assert (len(frames), result.fps) == (9, 24)  # the family's own 24 fps: 0.375 s
    samples, rate = read_audio(result.path)
    assert rate == 16_000 and samples.shape[0] == 2  # the tiny vocoder's rate, stereo as LTX-2's
    assert abs(samples.shape[1] - seconds * rate) <= AAC_FRAME
    assert np.abs(samples).max() > 1e-3  # the model's sound, not silence
    assert result.has_audio and result.audio == "generated"
    for said in (read_comment(result.path), json.loads(result.metadata_path.read_text())):
        assert said["has_audio"] is True and said["audio"] == "generated" and said["soundtrack"] is None


def test_the_file_carries_the_sound_the_model_made(engine, tiny_models, chelsea):
    # Rendered and exported in two steps, as a long video would be: the sound travels in the checked request.
    request = GenerationRequest(image=chelsea, prompt="rain on a window", model=str(tiny_models["ltx-2"]), height=32,
                                width=32, num_frames=17, num_inference_steps=2, seed=5)  # fmt: skip
    frames, ran = engine.render_segments(engine.choose_levers(engine.choose_strategy(check(request))))
    made = ran.audio
    assert made is not None and made.rate == 16_000
    assert abs(made.seconds - 17 / 24) < 0.05  # as long as the frames, less its causal decoder's few hundredths
    result = engine.export(frames, ran, 0.0)
    samples, _ = read_audio(result.path)
    fitted = made.fitted(17 / 24, loop=False).samples
    middle = slice(AAC_FRAME, fitted.shape[1] - AAC_FRAME)  # AAC's first and last frames are approximate
    assert samples.shape == fitted.shape
    assert min(similar(samples[c, middle], fitted[c, middle]) for c in range(2)) > 0.95


def test_ltx2_call_follows_lightricks_defaults_and_guidance_1_turns_them_off(engine, tiny_models, chelsea):
    from i2v.images import fit

    checked = check(GenerationRequest(image=chelsea, model=str(tiny_models["ltx-2"]), height=32, width=32,
                                      num_frames=9))  # fmt: skip
    family, knobs, pipe = checked.family, checked.knobs, engine.load(checked.source)
    photo = fit(checked.photo, 32, 32, "crop")
    kwargs = family.call_kwargs(pipe, knobs, photo, None)
    assert (kwargs["frame_rate"], kwargs["guidance_scale"], kwargs["audio_guidance_scale"]) == (24.0, 3.0, 7.0)
    assert (kwargs["modality_scale"], kwargs["guidance_rescale"], kwargs["use_cross_timestep"]) == (3.0, 0.7, False)
    assert kwargs["stg_scale"] == 0.0 and kwargs["spatio_temporal_guidance_blocks"] is None  # 2 blocks, not block 29
    # The photo went through H.264 at CRF 33 here (the pipeline's own step needs PyAV), so the pipeline skips it
    sent, given = np.asarray(kwargs["image"], dtype=np.int16), np.asarray(photo, dtype=np.int16)
    assert kwargs["image_crf"] == 0 and 0 < np.abs(sent - given).mean() < 20
    unguided = family.call_kwargs(pipe, knobs.model_copy(update={"guidance_scale": 1.0}), photo, None)
    assert (unguided["audio_guidance_scale"], unguided["modality_scale"], unguided["guidance_rescale"]) == (1.0, 1.0, 0)


def test_an_ltx2_folder_is_known_without_our_marker(tiny_models, tmp_path):
    from i2v.families import FAMILY_MARKER, resolve

    index = json.loads((tiny_models["ltx-2"] / "model_index.json").read_text())
    index.pop(FAMILY_MARKER)
    for name, pipeline, vocoder, family in [("i2v", "LTX2ImageToVideoPipeline", "LTX2Vocoder", "ltx-2"),
                                            ("hub", "LTX2Pipeline", "LTX2Vocoder", "ltx-2"),  # Lightricks/LTX-2's own
                                            ("2.3", "LTX2Pipeline", "LTX2VocoderWithBWE", None)]:  # fmt: skip
        folder = tmp_path / name
        folder.mkdir()
        (folder / "model_index.json").write_text(json.dumps({**index, "_class_name": pipeline,
                                                             "vocoder": ["ltx2", vocoder]}))  # fmt: skip
        if family is None:  # LTX-2.3 and later: another vocoder and other defaults, not this family's
            with pytest.raises(InvalidInput, match="no supported image-to-video pipeline"):
                resolve(str(folder))
        else:
            assert resolve(str(folder)).family.id == family


def test_ltx2_refuses_a_soundtrack_and_a_video_longer_than_one_call(chelsea, tmp_path):
    track = write_wav(tmp_path / "song.wav", sweep(1.0))
    base = dict(image=chelsea, model="ltx-2", height=32, width=32, num_frames=9)
    with pytest.raises(InvalidInput) as refused:
        check(GenerationRequest(**base, soundtrack=track))
    assert refused.value.message.code == "sound.model_makes_sound" and str(tmp_path) not in str(refused.value)
    for longer in (dict(num_frames=None, duration=30.0), dict(segments=["a cat sits", "the cat stands up"])):
        with pytest.raises(InvalidInput) as refused:
            check(GenerationRequest(**{**base, **longer}))
        assert refused.value.message.code == "sound.one_call"
    assert check(GenerationRequest(**{**base, "num_frames": None, "duration": 10.0})).knobs.num_frames == 241


def test_a_longer_soundtrack_is_trimmed_to_the_video(engine, chelsea, tmp_path):
    tone = sweep(3.0)
    result = engine.generate(camera(chelsea, soundtrack=write_wav(tmp_path / "long.wav", tone)))

    samples, rate = read_audio(result.path)
    assert rate == RATE and samples.shape[0] == 2
    assert abs(samples.shape[1] - 9 / 8 * RATE) <= AAC_FRAME  # the video's 1.125 s, not the file's 3 s
    middle = slice(AAC_FRAME, samples.shape[1] - AAC_FRAME)
    assert similar(samples[0, middle], tone[middle]) > 0.99  # the file's own beginning
    assert result.has_audio and result.audio == "soundtrack"
    assert "sound.trimmed" in [said.code for said in result.adjustments]
    assert read_comment(result.path)["soundtrack"] == "long.wav"  # its name, never this machine's folders


def test_a_shorter_soundtrack_is_looped_to_the_video(engine, chelsea, tmp_path):
    period = round(0.4 * RATE)
    tone = sweep(0.4)
    result = engine.generate(camera(chelsea, soundtrack=write_wav(tmp_path / "short.wav", tone)))

    samples, _ = read_audio(result.path)
    assert abs(samples.shape[1] - 9 / 8 * RATE) <= AAC_FRAME
    first = slice(AAC_FRAME, period - AAC_FRAME)
    again = slice(period + AAC_FRAME, 2 * period - AAC_FRAME)
    assert similar(samples[0, again], samples[0, first]) > 0.99  # the second play is the first again
    assert similar(samples[0, again], tone[first]) > 0.99
    assert similar(samples[0, first], samples[0, slice(first.start + 2000, first.stop + 2000)]) < 0.5  # no tone
    assert "sound.looped" in [said.code for said in result.adjustments]


def test_sound_follows_the_video_through_interpolation_and_upscaling(engine, chelsea, tmp_path):
    result = engine.generate(camera(chelsea, soundtrack=write_wav(tmp_path / "a.wav", sweep(2.0)), interpolate=2,
                                    upscale=2))  # fmt: skip
    frames, meta = read_mp4(result.path)
    samples, _ = read_audio(result.path)
    assert frames.shape[1:3] == (64, 64) and meta["fps"] == result.fps
    assert abs(samples.shape[1] - len(frames) / meta["fps"] * RATE) <= AAC_FRAME


@pytest.mark.parametrize("kind, code", [("missing", "sound.missing"), ("empty", "sound.empty"),
                                        ("no samples", "sound.empty"), ("text", "sound.not_audio"),
                                        ("photo", "sound.not_audio")])  # fmt: skip
def test_a_bad_soundtrack_is_refused_before_any_work(kind, code, engine, chelsea, tmp_path):
    path = tmp_path / {"text": "notes.mp3", "photo": "cat.wav"}.get(kind, "song.wav")
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "no samples":
        write_wav(path, np.zeros(0))
    elif kind == "text":
        path.write_text("la la la, not a song\n" * 50)
    elif kind == "photo":
        path.write_bytes(chelsea.read_bytes())
    # Weights for this family are nowhere here: a refusal that names the sound came before loading them.
    request = GenerationRequest(image=chelsea, model="wan2.2-ti2v-5b", soundtrack=path)
    with pytest.raises(InvalidInput) as refused:
        engine.generate(request)
    assert refused.value.message.code == code
    assert path.name in str(refused.value) and str(tmp_path) not in str(refused.value)
    assert not list((tmp_path / "outputs").glob("*.mp4"))


def test_a_camera_video_without_a_soundtrack_has_no_sound(engine, chelsea):
    result = engine.generate(camera(chelsea))
    assert read_audio(result.path) is None
    assert not result.has_audio and result.audio is None and read_comment(result.path)["has_audio"] is False


def test_fitting_sound_to_a_length():
    ramp = Audio(np.linspace(-1, 1, 100, dtype=np.float32), 1_000)  # mono, 0.1 s
    looped, said = lay_under(ramp, 0.25, "ramp.wav")
    assert looped.length == 250 and np.array_equal(looped.samples[0, 100:200], ramp.samples[0])
    assert [s.code for s in said] == ["sound.looped"]
    padded, said = lay_under(ramp, 0.12, None)  # a model's own sound: silence after it, never a loop
    assert padded.length == 120 and not padded.samples[0, 100:].any() and said == []
    assert lay_under(ramp, 0.05, "ramp.wav")[0].length == 50
