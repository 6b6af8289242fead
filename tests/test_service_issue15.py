"""Issue 15 in the studio's service, with no server: the page's form builds references, template,
soundtrack and style knobs (its "" and 0 for none), a label without a file is refused, the job store
copies references (photos and clips, told apart by their content) and the soundtrack into the job,
"Load into form" leaves those files as the form has them, and a refinement with a template is the
prompt that runs (the engine adds nothing more) with advice beside it: the template's or the LLM's
suggestions, within the model's bounds, estimated by the planner as the hardware panel estimates,
never applied unasked."""

from __future__ import annotations

import math
import threading
import wave
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from i2v.engine import VideoEngine
from i2v.errors import InvalidInput
from i2v.hardware import GPU, Hardware
from prompting import Endpoint, PromptRefiner
from studio import Studio, StudioError
from studio.hosting import Hosting
from studio.store import JobStore

H100 = Hardware((GPU(0, "NVIDIA H100 80GB HBM3", 80.0, 79.0),), 128.0)  # a described card: the planner's input


def write_wav(path: Path, seconds: float, rate: int = 16000, hz: float = 440.0) -> Path:
    """A mono 16-bit sine, made here with the standard library."""
    samples = (np.sin(2 * math.pi * hz * np.arange(int(seconds * rate)) / rate) * 12000).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path


def write_clip(path: Path, frames: int = 6) -> Path:
    """A short MP4 clip (moving noise), written by the export the studio uses."""
    from i2v.export import write_mp4

    pixels = np.random.default_rng(0).integers(0, 256, (frames, 32, 32, 3), dtype=np.uint8)
    return write_mp4(pixels, path, 8, {})


def studio(tmp_path, model: str = "camera", refiner: PromptRefiner | None = None, device: str = "cpu",
           hardware: Hardware = Hardware((), 16.0), **kwargs) -> Studio:  # fmt: skip
    engine = VideoEngine(tmp_path / "out", device=device)
    return Studio(engine, refiner or PromptRefiner(), hardware, model=model, **kwargs)


def page_form(photo: Path, **values) -> dict:
    return {"image": str(photo), "words": "a cat", "prompt": "a cat looks around", "model": "camera", "height": 32,
            "width": 32, "num_frames": 8, "fps": 8, "seed": 1, "auto_refine": False, "camera_motion": "static",
            "template": "", "style": "", "color_palette": "", "motion_intensity": None, "soundtrack": None,
            **{f"reference_{n}": None for n in range(1, 5)}, **{f"reference_label_{n}": "" for n in range(1, 5)},
            **values}  # fmt: skip


def test_the_form_builds_references_template_soundtrack_and_style_knobs(tmp_path, chelsea, coffee):
    s = studio(tmp_path)
    plain = s.request(page_form(chelsea))  # the page's none: "" and None
    assert (plain.template, plain.style, plain.color_palette, plain.motion_intensity) == (None, None, None, None)
    assert plain.references == [] and plain.soundtrack is None
    sound = write_wav(tmp_path / "song.wav", 1.0)
    asked = s.request(page_form(chelsea, reference_2=str(coffee), reference_label_2="the mug", reference_4=str(chelsea),
                                template="Slow push-in", style="Watercolor", color_palette="warm",
                                motion_intensity=0.0, soundtrack=str(sound)))  # fmt: skip
    assert [(ref.source.name, ref.label) for ref in asked.references] == [("coffee.png", "the mug"), ("chelsea.png", "")]
    assert (asked.template, asked.style, asked.color_palette) == ("Slow push-in", "watercolour", "warm")
    assert asked.motion_intensity is None and asked.soundtrack == sound  # 0: the model's usual
    assert s.request(page_form(chelsea, motion_intensity=1.4)).motion_intensity == 1.4
    with pytest.raises(StudioError, match=r"Reference 3 has a label \(the dog\) but no photo or clip"):
        s.request(page_form(chelsea, reference_label_3="the dog"))
    with pytest.raises(ValidationError) as refused:
        s.request(page_form(chelsea, motion_intensity=2.0))
    assert s.explain(refused.value, "en") == "motion_intensity 2.0 is too large: at most 1.5"


def test_the_store_keeps_reference_photos_clips_and_the_soundtrack_with_the_job(tmp_path, chelsea, coffee):
    store = JobStore(tmp_path / "out")
    clip, sound = write_clip(tmp_path / "clip.bin"), write_wav(tmp_path / "song", 0.5)  # names that say nothing
    form = {"model": "camera", "references": [{"label": "a photo"}, {"label": "a clip"}, {"label": "sent"}]}
    job = store.submit("alice", form, chelsea, ".png", others={
        "reference_1": (coffee, ".png"), "reference_2": (clip, ".bin"),
        "reference_3": (clip.read_bytes(), ".png"), "soundtrack": (sound.read_bytes(), "")})  # fmt: skip
    kept = [Path(ref["source"]) for ref in job.form["references"]]
    assert [path.name for path in kept] == ["reference_1.png", "reference_2.mp4", "reference_3.mp4"]  # by content
    assert [ref["label"] for ref in job.form["references"]] == ["a photo", "a clip", "sent"]
    assert Path(job.form["soundtrack"]).name == "soundtrack.wav"
    assert kept[1].read_bytes() == clip.read_bytes() and Path(job.form["soundtrack"]).read_bytes() == sound.read_bytes()
    assert all(path.parent == job.photo.parent for path in [*kept, Path(job.form["soundtrack"])])
    store.close()


def test_a_page_job_with_a_soundtrack_runs_and_keeps_the_files_as_the_form_has_them(tmp_path, chelsea):
    from i2v.export import read_audio

    s = studio(tmp_path)
    hosting = Hosting(s, JobStore(tmp_path / "out"))
    sound = write_wav(tmp_path / "song.wav", 0.4)
    job = hosting.submit(page_form(chelsea, soundtrack=str(sound), color_palette="warm", template="orbit"), "local",
                         "en")  # fmt: skip
    assert Path(job.form["soundtrack"]).parent.name == job.id  # copied into the store: the upload may go
    outcome = s.run(dict(job.form), {}, "en", None, threading.Event())
    result = outcome.result
    assert (result.has_audio, result.audio, outcome.params["soundtrack"]) == (True, "soundtrack", "soundtrack.wav")
    assert result.template == "orbit" and result.camera_motion != "static"  # the template's move, rendered
    samples, rate = read_audio(result.path)
    assert abs(samples.shape[-1] / rate - result.num_frames / result.fps) < 0.1  # looped to the video's second
    loaded = s.from_history([outcome.history_item], 0)
    assert (loaded["template"], loaded["style"], loaded["color_palette"]) == ("orbit", "", "warm")
    assert not {"soundtrack", "image", *(f"reference_{n}" for n in range(1, 5))} & set(loaded)  # the form keeps its own
    hosting.store.close()


def test_a_refinement_with_a_template_is_the_prompt_that_runs_and_advice_changes_nothing(tmp_path, chelsea):
    from i2v.checks import check
    from i2v.memory import RunShape, fastest_fit
    from i2v.templates import get_template

    s = studio(tmp_path, model="wan2.2-ti2v-5b", device="cuda:0", hardware=H100)  # never generates: plans only
    settings = {"height": 480, "width": 832, "num_frames": 49, "num_inference_steps": 30}
    refined = s.refine("a cat", str(chelsea), "wan2.2-ti2v-5b", "en", template="dance", style="anime",
                       color_palette="cool", settings=settings)  # fmt: skip
    dance = get_template("dance")
    assert dance.words("default") in refined.prompt or dance.words("literal") in refined.prompt
    request = s.request({**settings, "image": str(chelsea), "model": "wan2.2-ti2v-5b", "prompt": refined.prompt,
                         "template": "dance", "style": "anime", "color_palette": "cool",
                         "camera_motion": refined.camera_motion})  # fmt: skip
    assert check(request).knobs.prompt == refined.prompt  # the engine adds nothing: the preview is what runs
    advice = refined.advice
    frames = dance.frames_for(24, s.family("wan2.2-ti2v-5b").round_frames, 121)
    assert advice.values == {"num_frames": frames, "guidance_scale": dance.guidance_for(5.0)}
    assert set(advice.source.values()) == {"template"}
    planned = fastest_fit(RunShape("wan2.2-ti2v-5b", 480, 832, frames, 30, guidance_scale=advice.values["guidance_scale"]),
                          79.0, 128.0, "NVIDIA H100 80GB HBM3")  # fmt: skip
    assert advice.estimate["seconds"] == planned.seconds and advice.estimate["peak_gb"] == planned.peak_gb
    assert advice.estimate["fits"] and f"{planned.seconds / 60:.1f} min" in advice.text
    assert "NVIDIA H100" in advice.text and "nothing changes until you apply them" in advice.text
    cpu = studio(tmp_path, model="wan2.2-ti2v-5b").refine("一只猫", None, "wan2.2-ti2v-5b", "zh", template="nod")
    assert cpu.advice.estimate is None and "没有 GPU" in cpu.advice.text


def test_a_templates_advice_at_turbo_speed_keeps_the_distilled_runs_guidance(tmp_path, chelsea):
    s = studio(tmp_path, model="wan2.1-i2v-14b-480p")
    turbo = s.refine("a woman", None, "wan2.1-i2v-14b-480p", "en", template="dance", settings={"speed": "turbo"})
    assert turbo.advice.values == {"num_frames": 81}  # no guidance 5.5: "Use the advice" keeps CFG off
    exact = s.refine("a woman", None, "wan2.1-i2v-14b-480p", "en", template="dance", settings={"speed": "exact"})
    assert exact.advice.values == {"num_frames": 81, "guidance_scale": 5.5}


def test_the_reference_count_is_said_once():
    import api
    from i2v.request import MAX_REFERENCES, GenerationRequest
    from studio.jobspec import JobIn, RefineIn
    from studio.service import REFERENCE_SLOTS

    assert len(REFERENCE_SLOTS) == MAX_REFERENCES
    for model in (GenerationRequest, JobIn, RefineIn):
        metadata = model.model_fields["references"].metadata
        assert next(m.max_length for m in metadata if hasattr(m, "max_length")) == MAX_REFERENCES, model
    slots = [api._reference_slot(f"reference_{n}", "reference_") for n in range(MAX_REFERENCES + 2)]
    assert slots == [None, *range(1, MAX_REFERENCES + 1), None]
    assert api._reference_slot(f"reference_label_{MAX_REFERENCES}", "reference_label_") == MAX_REFERENCES


def test_a_job_refined_first_keeps_the_forms_settings(tmp_path, chelsea):
    s = studio(tmp_path)
    form = page_form(chelsea, prompt="", auto_refine=True, template="dance", num_frames=9)
    outcome = s.run(form, {}, "en", None, threading.Event())
    assert outcome.refined.advice.values["num_frames"] != 9  # the template suggests its own length ...
    assert outcome.result.num_frames == 9  # ... which nobody applied


def test_the_llms_advice_is_bounded_to_the_model_and_estimated(tmp_path, faulty_llm):
    from prompting.config import bounds

    for fault in ("ok", "injected"):
        refiner = PromptRefiner(Endpoint(faulty_llm.base_url, f"{fault}#d1-{tmp_path.name}", None, False))
        s = studio(tmp_path, model="wan2.2-ti2v-5b", refiner=refiner, device="cuda:0", hardware=H100,
                   llm_configured=True)  # fmt: skip
        refined = s.refine("a cat turns", None, "wan2.2-ti2v-5b", "en")
        rules = bounds("wan2.2-ti2v-5b")
        values, source = refined.advice.values, refined.advice.source
        assert source and set(source.values()) == {"refiner"} and refined.warning is None, (fault, refined.details)
        assert rules.frames[0] <= values["num_frames"] <= rules.frames[1], (fault, values)
        assert rules.fps[0] <= values.get("fps", rules.fps[0]) <= rules.fps[1]
        assert values.get("guidance_scale") is None or rules.guidance[0] <= values["guidance_scale"] <= rules.guidance[1]
        assert refined.advice.estimate is not None and refined.advice.estimate["gpu"] == "NVIDIA H100 80GB HBM3"


def test_refining_for_a_knob_the_model_cannot_use_is_refused_as_the_job_would_be(tmp_path, coffee):
    s = studio(tmp_path)
    with pytest.raises(InvalidInput, match="style anime: camera reads no prompt"):
        s.refine("a cat", None, "camera", "en", style="anime")
    with pytest.raises(InvalidInput, match="camera takes no reference images"):
        s.refine("a cat", None, "camera", "en", references=[("the mug", str(coffee))])
    from i2v.checks import check
    from i2v.request import GenerationRequest, Reference

    with pytest.raises(InvalidInput) as refined:
        s.refine("a cat", None, "wan2.1-i2v-14b-480p", "en", references=[("the mug", str(coffee))])
    with pytest.raises(InvalidInput) as checked:
        check(GenerationRequest(image=coffee, model="wan2.1-i2v-14b-480p", references=[Reference(source=coffee)]))
    assert str(refined.value) == str(checked.value) and "wan-vace-1.3b, wan-vace-14b" in str(refined.value)


def test_a_bad_jobs_fields_are_said_as_the_knob_the_count_and_the_rule_in_each_language(tmp_path):
    from studio.jobspec import JobIn

    service = studio(tmp_path)
    body = {"image": "data:image/png;base64,AAAA", "references": [{"image": "data:image/png;base64,AAAA"}] * 5,
            "fps": 30.5, "colour": "warm"}  # fmt: skip
    with pytest.raises(ValidationError) as bad:
        JobIn(**body)
    said = {language: [service.field_error(error, language) for error in bad.value.errors()] for language in ("en", "zh")}
    assert "references: 5 given, at most 4" in said["en"] and "参考主体：给了 5 个，最多 4 个" in said["zh"]
    assert "fps 30.5 is not a whole number" in said["en"] and "帧率 30.5 不是整数" in said["zh"]
    assert "colour is not a field this takes" in said["en"] and "colour 不是可用的字段" in said["zh"]
    with pytest.raises(ValidationError) as missing:
        JobIn(image="data:image/png;base64,AAAA", references=[{"label": "the cat"}])
    assert [service.field_error(error, "en") for error in missing.value.errors()] == ["references #1 image is missing"]
    assert not any("Input should" in line or "Field required" in line for line in said["zh"] + said["en"])
