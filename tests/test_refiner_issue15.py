"""The refiner's part of issue 15: references named by what they show (or by their labels), motion
templates and the style knobs with and without an LLM, and advice bounded to the family in the
refiner's own result. Against the offline rules, the faulty fake server (tests/fakes/faulty_llm.py:
one that sees, one that refuses images as llama-server does, one that advises 1000 frames) and the
real llama-server with SmolLM2-135M (which cannot see: it refuses images for real).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import uuid

import pytest

from llama import MODEL_NAME, timed_chat
from prompting import Endpoint, PromptRefiner, RefinedPrompt, storyboard_offline
from prompting.config import CONFIG_DIR, bounds, looks, styles
from prompting.errors import InvalidChoice
from prompting.rules import dialect, intensity_phrase, look_phrase
from prompting.schema import MAX_REFERENCES, Storyboard
from prompting.text import says
from test_refiner_llama import MAX_TOKENS, SCHEMA, budget_s, refiner_messages

SECRET = "sk-test-SECRET-4f9a2b7c"
WAVE = "The person raises a hand and waves hello at the camera with a friendly smile."


@pytest.fixture(scope="module")
def squares(tmp_path_factory) -> dict[str, object]:
    """Plain-colour photos (a vision model names them by colour), a short green clip, and a file that is no image."""
    import cv2
    import numpy as np
    from PIL import Image

    folder = tmp_path_factory.mktemp("references")
    made = {}
    for colour, rgb in (("red", (255, 0, 0)), ("blue", (0, 0, 255)), ("yellow", (255, 255, 0))):
        made[colour] = folder / f"{colour}.png"
        Image.new("RGB", (32, 32), rgb).save(made[colour])
    made["clip"] = folder / "green.mp4"
    writer = cv2.VideoWriter(str(made["clip"]), cv2.VideoWriter_fourcc(*"mp4v"), 8, (32, 32))
    for _ in range(5):
        writer.write(np.full((32, 32, 3), (0, 160, 0), np.uint8))  # BGR: green either way
    writer.release()
    made["broken"] = folder / "broken.png"
    made["broken"].write_bytes(b"not an image")
    return made


def refiner_for(server, fault: str, vision: bool = False) -> PromptRefiner:
    return PromptRefiner(Endpoint(server.base_url, f"{fault}#{uuid.uuid4().hex[:8]}", SECRET, vision), timeout_s=5)


def texts(result) -> list[str]:
    return [str(w) for w in result.warnings]


def sent(server) -> list:
    """The last request's user message content."""
    return server.requests[-1]["body"]["messages"][-1]["content"]


# ---------------------------------------------------------------------- offline
def test_offline_names_each_reference_by_its_label_in_order(squares):
    refs = [("the grey cat", squares["red"]), ("", squares["blue"]), ("  a red\u200b ball. ", b"png bytes")]
    result = PromptRefiner(None).refine("the grey cat chases the ball", "wan2.2-ti2v-5b", references=refs)
    assert result.source == "offline" and result.subjects == ["the grey cat", "subject 2", "a red ball"]
    # The text names the grey cat already; the others are named in one sentence, each kept distinct.
    assert result.prompt.startswith("the grey cat chases the ball. Subject 2 and a red ball appear together")
    assert result.prompt.count("the grey cat") == 1
    assert 'no LLM looked at the reference photos; the subjects are named by their labels: "the grey cat", ' \
           '"subject 2", "a red ball"' in texts(result)  # fmt: skip


def test_offline_writes_the_template_motion_style_palette_camera_and_intensity():
    result = PromptRefiner(None).refine("", "ltx-video", motion=WAVE, style="anime", color_palette="warm",
                                        camera_motion="dolly_in", motion_intensity=0.2)  # fmt: skip
    looked = looks()
    assert result.prompt.startswith(WAVE)  # the template's motion is the action: no proposed motion
    for said in (looked["styles"]["anime"]["ltx"], looked["palettes"]["warm"]["ltx"], "The camera slowly pushes in.",
                 intensity_phrase(0.2, "ltx-video")):  # fmt: skip
        assert said and said in result.prompt
    assert "realistic" not in result.prompt  # LTX's quality words say "realistic": a chosen style replaces them
    assert (result.camera_motion, result.motion_intensity) == ("dolly_in", 0.2)
    assert "offline.no_prompt" not in [w.code for w in result.warnings]
    # Without the choices, the same words give the family's own phrasing and a static camera.
    plain = PromptRefiner(None).refine(WAVE, "ltx-video")
    assert plain.camera_motion == "static" and "anime" not in plain.prompt and "natural lighting" in plain.prompt


def test_the_engine_adds_nothing_to_an_offline_refinement():
    """The refiner writes the engine's own words for the style knobs (configs/styles.toml), so the
    engine's check step (i2v/phrasing.phrase) finds them all said and adds none again."""
    from i2v.phrasing import dialect_of, from_refiner, phrase
    from i2v.templates import get_template

    for family in ("wan2.2-ti2v-5b", "ltx-video", "hunyuanvideo-i2v"):
        motion = get_template("wave").words(dialect_of(family))
        result = PromptRefiner(None).refine("", family, motion=motion, style="watercolour", color_palette="cool",
                                            camera_motion="pan_left", motion_intensity=0.1)  # fmt: skip
        phrased, notes = phrase(result.prompt, family, template="wave", style="watercolour", color_palette="cool",
                                camera_motion="pan_left", motion_intensity=from_refiner(0.1))  # fmt: skip
        assert phrased == result.prompt, (family, notes)
        assert dialect(family) == dialect_of(family)


def test_intensity_words_are_the_engines_for_the_same_intensity():
    from i2v.phrasing import dialect_of, from_refiner, intensity_words

    for family in ("wan2.2-ti2v-5b", "ltx-video", "framepack"):
        for step in range(21):
            value = step / 20
            assert intensity_phrase(value, family) == intensity_words(from_refiner(value), dialect_of(family))


def test_the_offline_storyboard_says_the_style_in_every_segment():
    family = "wan2.2-ti2v-5b"
    board = PromptRefiner(None).storyboard("猫转头", 3, 4.0, family, style="pixel_art", color_palette="neutral")
    said = [look_phrase("styles", "pixel_art", family), look_phrase("palettes", "neutral", family)]
    assert all(all(words in prompt for words in said) for prompt in board.segments)
    assert storyboard_offline("猫转头", 2, 4.0).segments[0].startswith("猫转头")  # unchanged without them


@pytest.mark.parametrize(
    ("kwargs", "words_"),
    [({"style": "vaporwave"}, "unknown style 'vaporwave'"), ({"color_palette": "sepia"}, "unknown colour palette"),
     ({"camera_motion": "barrel_roll"}, "unknown camera motion 'barrel_roll'"),
     ({"motion_intensity": 1.2}, "motion intensity 1.2 is off the refiner's scale"),
     ({"references": [("", b"x")] * 5}, "5 reference photos: the refiner names at most 4")],
)  # fmt: skip
def test_choices_the_refiner_cannot_honour_are_refused(kwargs, words_):
    with pytest.raises(InvalidChoice, match=words_):
        PromptRefiner(None).refine("cat", "ltx-video", **kwargs)


def test_vocabularies_match_the_engine():
    """prompting must not import i2v, so each spells these out: keep them equal."""
    from i2v.request import PALETTES, STYLES, GenerationRequest

    assert set(looks()["styles"]) == set(STYLES) and set(looks()["palettes"]) == set(PALETTES)
    metadata = GenerationRequest.model_fields["references"].metadata
    assert MAX_REFERENCES == next(m.max_length for m in metadata if hasattr(m, "max_length"))


def test_the_refiner_and_the_engine_judge_a_sentence_said_alike():
    """prompting.text.says is a copy of i2v.phrasing._says (prompting must not import i2v): keep them equal."""
    from i2v.phrasing import _says

    clay, warm = look_phrase("styles", "claymation", "ltx-video"), look_phrase("palettes", "warm", "ltx-video")
    samples = [(f"A cat. {clay}", clay), (f"a cat.  {clay.upper().rstrip('.')}", clay), ("She holds the clay pot.", clay),
               ("She is not warm.", warm), (f"{warm[:-1]} and soft", warm), ("", warm), (warm, "")]  # fmt: skip
    judged = [says(prompt, words_) for prompt, words_ in samples]
    assert judged == [_says(prompt, words_) for prompt, words_ in samples]
    assert judged == [True, True, False, False, True, False, True]


# ---------------------------------------------------------------------- an LLM that sees, or not
def test_a_seeing_endpoint_names_each_reference_by_what_it_shows(faulty_llm, squares, chelsea):
    refs = [("", squares["red"]), ("the ball", squares["blue"]), ("leaf", squares["clip"])]
    result = refiner_for(faulty_llm, "sees", vision=True).refine("they play", "wan-vace-1.3b", chelsea, references=refs)
    assert result.source == "llm" and result.subjects == ["red subject", "blue subject", "green subject"]
    assert "red subject" in result.prompt and "green subject" in result.prompt
    assert not [w for w in result.warnings if w.code.startswith("refiner.references")], texts(result)
    content = sent(faulty_llm)
    assert [p["type"] for p in content] == ["text", "image_url", "text", "image_url", "text", "image_url", "text",
                                            "image_url"]  # fmt: skip
    assert 'Reference 2 (the person\'s label: "the ball"):' == content[4]["text"]
    assert "Name each subject by what its reference shows" in content[0]["text"]


def test_what_the_llm_did_not_see_or_name_is_named_by_its_label(faulty_llm, squares):
    refs = [("", squares["red"]), ("the ball", squares["broken"]), ("", squares["yellow"])]
    result = refiner_for(faulty_llm, "sees-one", vision=True).refine("they play", "wan-vace-1.3b", references=refs)
    assert result.subjects == ["red subject", "the ball", "subject 3"]
    assert "reference 2 could not be read (UnidentifiedImageError), so the LLM did not see it; the subjects are " \
           'named by their labels: "the ball"' in texts(result)  # fmt: skip
    assert 'the LLM named 1 of the 2 reference subjects it saw; the others are named by their labels: "subject 3"' \
           in texts(result)  # fmt: skip
    # The fake's prompt names only the red subject: the refiner names the others, and says so.
    assert result.prompt.endswith("The ball and subject 3 appear together, each keeping its own distinct look.")
    assert 'the LLM\'s prompt did not name "the ball", "subject 3": a sentence naming them was added' in texts(result)
    assert 'Reference 2: not shown; call it "the ball".' in [p.get("text") for p in sent(faulty_llm)]


def test_an_endpoint_that_refuses_images_is_asked_again_without_them(faulty_llm, squares, chelsea):
    refiner = refiner_for(faulty_llm, "blind", vision=True)
    refs = [("the grey cat", squares["red"]), ("", squares["blue"])]
    result = refiner.refine("they play", "wan2.2-ti2v-5b", chelsea, references=refs)
    assert result.source == "llm" and result.subjects == ["the grey cat", "subject 2"]
    assert texts(result)[0] == (
        "the LLM endpoint refused the images (500: image input is not supported - hint: if this is unexpected, you "
        "may need to provide the mmproj) and wrote the prompt without seeing them; the subjects are named by their "
        'labels: "the grey cat", "subject 2"')  # fmt: skip
    mine = [r["body"] for r in faulty_llm.requests if r["body"]["model"] == refiner.endpoint.model]
    assert len(mine) == 2  # a refusal of images is not retried as a failing server would be
    assert isinstance(mine[0]["messages"][-1]["content"], list) and isinstance(mine[1]["messages"][-1]["content"], str)
    assert '"the grey cat", "subject 2"' in mine[1]["messages"][-1]["content"]
    # The photo alone, refused: said on its own.
    alone = refiner.refine("the cat yawns", "wan2.2-ti2v-5b", chelsea)
    assert alone.source == "llm" and texts(alone)[0].startswith("the LLM endpoint refused the images (500")


def test_an_endpoint_that_cannot_see_is_told_the_labels(faulty_llm, squares):
    result = refiner_for(faulty_llm, "ok").refine("they play", "wan2.2-ti2v-5b", references=[("Max", squares["red"])])
    assert result.subjects == ["Max"] and isinstance(sent(faulty_llm), str)
    assert 'Subjects, one per reference photo, in order, by the person\'s names for them' in sent(faulty_llm)
    assert texts(result)[0] == ('the LLM endpoint is not set to see images (vision is off); the subjects are named by '
                                'their labels: "Max"')  # fmt: skip


def test_the_llm_result_honours_the_template_and_the_style_knobs(faulty_llm):
    refiner = refiner_for(faulty_llm, "ok")
    result = refiner.refine("", "ltx-video", motion=WAVE, style="watercolour", color_palette="cool",
                            camera_motion="pan_left", motion_intensity=0.9)  # fmt: skip
    assert result.source == "llm"
    assert (result.camera_motion, result.motion_intensity) == ("pan_left", 0.9)  # the server said dolly_in and 0.4
    style, palette = look_phrase("styles", "watercolour", "ltx-video"), look_phrase("palettes", "cool", "ltx-video")
    assert result.prompt.endswith(f"{style} {palette}")  # the server's prompt said neither
    assert [w.code for w in result.warnings][:2] == ["refiner.style_added", "refiner.palette_added"]
    assert len(result.prompt.split()) <= styles()["ltx-video"].word_budget
    told = sent(faulty_llm)
    assert f"describe exactly this motion): {WAVE}" in told and "describe the motion template above" in told
    assert "set camera_motion to it and describe it): pan_left" in told and style in told
    assert "set motion_intensity to it and describe motion this strong): 0.90" in told


def test_the_llm_storyboard_says_the_style_in_every_segment(faulty_llm):
    board = refiner_for(faulty_llm, "board").storyboard("the cat", 3, 4.0, "ltx-video", style="claymation")
    assert isinstance(board, Storyboard) and board.source == "llm", board.warnings
    assert all(p.endswith(look_phrase("styles", "claymation", "ltx-video")) for p in board.segments)
    assert [w.code for w in board.warnings] == ["refiner.style_added"]  # once, though three prompts lacked it


def canned(monkeypatch, *contents: str) -> PromptRefiner:
    """A refiner whose endpoint answers `contents` in turn (the transport is tested elsewhere)."""
    refiner = PromptRefiner(Endpoint("http://127.0.0.1:9/v1", "canned", SECRET), timeout_s=5)
    replies = iter(contents)
    monkeypatch.setattr(refiner.client, "complete", lambda *args, **kwargs: (next(replies), "json_schema"))
    return refiner


def llm_reply(prompt: str) -> str:
    return json.dumps({"prompt": prompt, "negative_prompt": "blurry", "camera_motion": "static", "motion_tags": [],
                       "motion_intensity": 0.5, "subjects": [], "suggestions": {}})  # fmt: skip


def test_a_look_counts_as_said_only_in_the_engines_words_so_the_engine_adds_nothing(monkeypatch):
    """A keyword is not the sentence: "the clay pot" says no claymation, "she is not warm" no warm
    palette. The refiner adds both sentences, and the engine's check step then adds neither again."""
    from i2v.phrasing import phrase

    knobs = {"style": "claymation", "color_palette": "warm"}
    result = canned(monkeypatch, llm_reply("A woman lifts the clay pot; she is not warm.")).refine(
        "a woman", "ltx-video", **knobs)
    clay, warm = look_phrase("styles", "claymation", "ltx-video"), look_phrase("palettes", "warm", "ltx-video")
    assert result.prompt == f"A woman lifts the clay pot; she is not warm. {clay} {warm}"
    assert [w.code for w in result.warnings] == ["refiner.style_added", "refiner.palette_added"]
    assert phrase(result.prompt, "ltx-video", **knobs)[0] == result.prompt
    # Said in the engine's words (any case), nothing is added.
    said = canned(monkeypatch, llm_reply(f"A woman lifts a pot. {clay.lower()} {warm}")).refine("a woman", "ltx-video",
                                                                                             **knobs)  # fmt: skip
    assert said.prompt == f"A woman lifts a pot. {clay.lower()} {warm}" and said.warnings == []


def test_a_look_the_cut_took_away_is_added_back(monkeypatch):
    clay = look_phrase("styles", "claymation", "ltx-video")
    long = " ".join(["The cat turns its head slowly."] * 20) + f" {clay}"  # said, but past LTX's 90 words
    result = canned(monkeypatch, llm_reply(long)).refine("a cat", "ltx-video", style="claymation")
    assert result.prompt.endswith(clay) and result.prompt.count(clay) == 1
    assert len(result.prompt.split()) <= styles()["ltx-video"].word_budget
    assert [w.code for w in result.warnings] == ["refiner.style_added", "refiner.cut_words"]


def studio_on(refiner: PromptRefiner, tmp_path):
    from i2v.engine import VideoEngine
    from i2v.hardware import Hardware
    from studio import Studio

    return Studio(VideoEngine(tmp_path / "out", device="cpu"), refiner, Hardware((), 16.0), model="camera")


def engine_words(family: str, template: str, intensity: float | None, camera: str) -> list[str]:
    """The sentences the engine adds for a template, an intensity and a camera move (configs/styles.toml)."""
    from i2v.phrasing import camera_words, dialect_of, intensity_words
    from i2v.templates import get_template, resolved

    dialect = dialect_of(family)
    move, strength = resolved(get_template(template), camera, intensity)
    return [get_template(template).words(dialect), intensity_words(strength, dialect), camera_words(move)]


def test_the_studios_prompt_with_the_engines_words_fits_the_word_budget(faulty_llm, tmp_path):
    """The LLM's long reply is cut so that what the engine adds after it (the template's, the intensity's
    and the camera move's words) fits LTX's 90 words too: the person's choices are never past the
    text encoder's limit. The preview is the prompt that runs (the engine adds nothing more)."""
    from i2v.phrasing import phrase

    family, budget = "ltx-video", styles()["ltx-video"].word_budget
    s = studio_on(refiner_for(faulty_llm, "long"), tmp_path)
    knobs = {"template": "wave", "style": "watercolour", "color_palette": "warm", "motion_intensity": 0.5,
             "camera_motion": "pan_left"}  # fmt: skip
    refined = s.refine("a cat", None, family, "en", **knobs)
    assert len(refined.prompt.split()) <= budget, refined.prompt
    assert phrase(refined.prompt, family, **knobs)[0] == refined.prompt
    said = [look_phrase("styles", "watercolour", family), look_phrase("palettes", "warm", family),
            *engine_words(family, "wave", 0.5, "pan_left")]  # fmt: skip
    assert all(words_ and words_ in refined.prompt for words_ in said), refined.prompt
    # No camera move asked: the LLM's (dolly_in) is added by the engine, and fits as well.
    picked = s.refine("a cat", None, family, "en", style="watercolour")
    assert picked.camera_motion == "dolly_in" and picked.prompt.endswith("The camera slowly pushes in.")
    assert len(picked.prompt.split()) <= budget, picked.prompt


def test_the_studios_storyboard_says_the_style_and_palette_and_fits_the_engines_words(monkeypatch, tmp_path, chelsea):
    from i2v.phrasing import phrase

    family, budget = "ltx-video", styles()["ltx-video"].word_budget
    long = " ".join(["The cat turns its head slowly."] * 40)
    refiner = canned(monkeypatch, json.dumps({"segments": [long, "The cat settles."], "negative_prompt": "blurry"}))
    form = {"image": str(chelsea), "words": "a cat", "model": family, "duration": 10, "template": "wave",
            "style": "Watercolor", "color_palette": "warm", "camera_motion": "pan_left", "motion_intensity": 0.5}
    board = studio_on(refiner, tmp_path).storyboard(form, "en")
    assert len(board.segments) == 2
    knobs = {"template": "wave", "style": "watercolour", "color_palette": "warm", "motion_intensity": 0.5,
             "camera_motion": "pan_left"}  # fmt: skip
    looks_ = [look_phrase("styles", "watercolour", family), look_phrase("palettes", "warm", family)]
    for segment in board.segments:
        assert all(segment.count(words_) == 1 for words_ in looks_), segment
        ran = phrase(segment, family, **knobs)[0]  # what the engine's check step makes of it
        assert len(ran.split()) <= budget and all(w in ran for w in engine_words(family, "wave", 0.5, "pan_left"))


# ---------------------------------------------------------------------- advice within the family's bounds
@pytest.mark.parametrize(
    ("family", "advice"),
    [("wan2.2-ti2v-5b", (161, 60, 10.0)), ("cogvideox-5b-i2v", (49, 60, 12.0)), ("svd-xt", (25, 60, 6.0)),
     ("ltx-video-long", (1001, 60, 1.0)), ("framepack", (1009, 60, 10.0)), ("camera", (241, 60, None))],
)  # fmt: skip
def test_advice_is_bounded_to_the_family_in_the_result(faulty_llm, family, advice):
    """The server advises num_frames 1000, fps 120 and guidance_scale 30, as the test LLM did when asked."""
    result = refiner_for(faulty_llm, "advice").refine("the cat yawns", family)
    got = result.suggestions
    assert (got.num_frames, got.fps, got.guidance_scale) == advice
    rules = bounds(family)
    assert (got.num_frames - rules.frame_offset) % rules.frame_step == 0
    said = " | ".join(texts(result))
    assert f"the LLM advised 1000 frames; {family} makes" in said and "the LLM advised fps 120;" in said
    assert "the LLM advised guidance_scale 30" in said


def test_every_familys_defaults_lie_within_its_bounds():
    """The bounds are data (configs/models.toml, configs/refiner.toml): each family's own defaults must fit them,
    and a family with a guidance default must have a guidance range."""
    models = tomllib.loads((CONFIG_DIR / "models.toml").read_text(encoding="utf-8"))["families"]
    for family in styles():
        rules, model = bounds(family), models[family]
        assert rules.frames[0] <= model["num_frames"] <= rules.frames[1], family
        assert rules.frames_on_rule(model["num_frames"]) == model["num_frames"], family
        assert rules.frames[1] <= model["max_frames"] and rules.fps[0] <= model["fps"] <= rules.fps[1], family
        if model.get("guidance_scale") is not None:
            assert rules.guidance and rules.guidance[0] <= model["guidance_scale"] <= rules.guidance[1], family
    assert bounds("ltx-video").frames_on_rule(100) == 97 and bounds("svd-xt").frames_on_rule(1) == 2
    assert bounds("wan2.2-ti2v-5b").frames_on_rule(-4) == 5 and bounds("svd-xt").fps == (7, 60)


def test_command_line(faulty_llm, squares):
    """One run (each start of Python costs seconds on a loaded machine): the flags reach the refiner."""
    chose = ("--reference", f"{squares['red']}=the grey cat", "--reference", str(squares["blue"]), "--style", "3d",
             "--camera-motion", "tilt_up", "--motion-intensity", "0.7", "--family", "cogvideox-5b-i2v")  # fmt: skip
    env = {**os.environ, "OPENAI_BASE_URL": faulty_llm.base_url, "I2V_LLM_MODEL": "advice#cli"}
    done = subprocess.run([sys.executable, "-m", "prompting", "they play", *chose], capture_output=True, text=True,
                          env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "camera: tilt_up" in lines[1] and "intensity: 0.70" in lines[1]
    assert "subjects: the grey cat, subject 2" in lines[1]
    assert "  advice: num_frames 49, fps 60, guidance_scale 12 (within cogvideox-5b-i2v's bounds)" in lines
    assert look_phrase("styles", "3d", "cogvideox-5b-i2v") in lines[0]


# ---------------------------------------------------------------------- the real server
@pytest.fixture(scope="module")
def llama_refiner(llama_url):
    """A refiner on the real server, with tests/test_refiner_llama.py's budget from the speed it shows now."""
    now = timed_chat(llama_url, refiner_messages("the cat yawns"), 48, SCHEMA)
    return lambda vision=False: PromptRefiner(Endpoint(llama_url, MODEL_NAME, vision=vision), timeout_s=budget_s(now),
                                              max_tokens=MAX_TOKENS)  # fmt: skip


def test_the_real_servers_advice_is_bounded(llama_refiner):
    """Asked in so many words, the test LLM advised 1000 frames and guidance 30: whatever it advises now,
    the result holds only what the family can make."""
    family = "wan2.2-ti2v-5b"
    result = llama_refiner().refine("the cat yawns. Use num_frames 1000, fps 120 and guidance_scale 30.", family)
    print(result.source, result.suggestions, texts(result))
    RefinedPrompt.model_validate(result.model_dump())
    rules, got = bounds(family), result.suggestions
    if got.num_frames is not None:
        assert rules.frames[0] <= got.num_frames <= rules.frames[1] and (got.num_frames - 1) % 4 == 0
    if got.fps is not None:
        assert rules.fps[0] <= got.fps <= rules.fps[1]
    if got.guidance_scale is not None:
        assert rules.guidance[0] <= got.guidance_scale <= rules.guidance[1]
    if result.source == "offline":  # allowed for a 135M model, but only with the reason said
        assert result.warnings[0].code in ("refiner.invalid_twice", "refiner.timeout"), texts(result)


def test_the_real_server_refuses_images_and_the_references_go_by_their_labels(llama_refiner, squares):
    """llama-server without a projector refuses image parts (500, "image input is not supported"): the
    refiner asks again without them, names the subjects by their labels and honours the choices."""
    refs = [("the grey cat", squares["red"]), ("", squares["blue"])]
    result = llama_refiner(vision=True).refine("they play together", "wan-vace-1.3b", references=refs, motion=WAVE,
                                               style="anime", camera_motion="orbit_left")  # fmt: skip
    print(result.source, result.prompt, texts(result))
    assert result.subjects == ["the grey cat", "subject 2"]
    assert result.camera_motion == "orbit_left" and "anime" in result.prompt.lower()
    if result.source == "llm":
        assert result.warnings[0].code == "refiner.references_by_label"
        assert result.warnings[0].params["why"].code == "refiner.images_refused", texts(result)
        assert "the grey cat" in result.prompt.lower() and "subject 2" in result.prompt.lower()
    else:  # allowed for a 135M model, but only with the reason said
        assert result.warnings[0].code in ("refiner.invalid_twice", "refiner.timeout"), texts(result)
    assert json.loads(result.model_dump_json())["subjects"] == ["the grey cat", "subject 2"]
