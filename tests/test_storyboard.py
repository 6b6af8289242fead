"""Storyboards: one prompt per segment of a long video, each continuing the one before.

Offline (the rules), through canned replies (how a reply becomes a storyboard: counts, cuts, repairs),
through the faulty server (every fault still gives N prompts, with the reason), and through the real
llama-server with SmolLM2-135M, where only the contract is asserted, never the wording.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import uuid

import pytest
from llama import MODEL_NAME, free_port, timed_chat

from prompting import (
    MAX_SEGMENTS,
    Endpoint,
    InvalidStoryboard,
    PromptRefiner,
    Storyboard,
    UnknownFamily,
    refine_offline,
    storyboard_offline,
)
from prompting.config import storyboard_defaults, storyboard_prompt, style
from prompting.schema import PROMPT_CHARS, storyboard_json_schema

SECRET = "sk-test-SECRET-4f9a2b7c"
TIMEOUT = 2.0
LEAD = "Continuing from the previous shot"
FAMILY = "wan2.2-ti2v-5b"


def assert_contract(board: Storyboard, segments: int, source: str | None = None):
    """What every storyboard promises, whoever wrote it."""
    Storyboard.model_validate(board.model_dump())
    assert len(board.segments) == segments
    assert all(p.strip() and len(p) <= PROMPT_CHARS for p in board.segments)
    assert source is None or board.source == source
    if board.source == "offline":
        assert board.model is None
        assert "offline.storyboard" in [w.code for w in board.warnings]  # it says no LLM wrote it
        assert all(p.startswith(LEAD) for p in board.segments[1:])
    assert SECRET not in board.model_dump_json()


# ---------------------------------------------------------------------- offline
def test_offline_continues_the_refined_prompt():
    board = storyboard_offline("猫转头", 4, 5.0, FAMILY)
    assert_contract(board, 4, "offline")
    first = refine_offline("猫转头", FAMILY).prompt
    assert board.segments[0] == first  # segment 1 is the offline refiner's own prompt
    assert all(p.startswith(LEAD) and p.endswith(first) for p in board.segments[1:])
    # The wording progresses: the action carries on, develops, and settles in the last segment.
    assert "carries on" in board.segments[1] and "develops further" in board.segments[2]
    assert "settles" in board.segments[3] and not any("settles" in p for p in board.segments[:3])
    assert all("same cat" in p for p in board.segments[1:])
    # Chinese stays untranslated, as the offline refiner keeps it, and the result says so.
    assert board.language == "zh" and board.prompt_language == "zh" and not board.translated
    codes = [w.code for w in board.warnings]
    assert "offline.untranslated" in codes and "offline.no_llm" not in codes
    assert board.seconds_each == 5.0 and board.duration == 20.0
    assert board.negative_prompt == refine_offline("猫转头", FAMILY).negative_prompt


def test_offline_english_and_many_segments():
    board = storyboard_offline("the dog runs along the beach, slow motion", 10, 3.0, "ltx-video")
    assert_contract(board, 10, "offline")
    assert board.prompt_language == "en" and board.translated and board.family == "ltx-video"
    assert "develops further" in board.segments[2]
    assert all("at the same pace" in p for p in board.segments[3:9])  # the last middle stage repeats
    assert "settles" in board.segments[9] and "same dog" in board.segments[9]
    two = storyboard_offline("", 2, 5.0, FAMILY, has_image=True)
    assert_contract(two, 2, "offline")
    assert "settles" in two.segments[1] and "same subject" in two.segments[1]  # no subject named


def test_offline_is_deterministic():
    first = storyboard_offline("镜头慢慢推近咖啡杯，女人微笑", 6, 4.0, FAMILY)
    assert first == storyboard_offline("镜头慢慢推近咖啡杯，女人微笑", 6, 4.0, FAMILY)
    assert all("same coffee cup and woman" in p for p in first.segments[1:])
    assert all("pushes in" in p for p in first.segments)  # the camera language stays the same


def test_the_most_segments_and_the_longest_words_stay_in_bounds():
    words = "一只猫在窗台上慢慢转头看向窗外的雨" * 60  # cut to 800 characters first
    board = PromptRefiner(None).storyboard(words, MAX_SEGMENTS, 2.0, "hunyuanvideo-i2v")
    assert_contract(board, MAX_SEGMENTS, "offline")
    assert len(board.original) == 800 and any(w.code == "text.cut_characters" for w in board.warnings)


@pytest.mark.parametrize(
    ("segments", "seconds", "words"),
    [
        (1, 5.0, "at least 2 segments, not 1: for a single segment, refine one prompt"),
        (0, 5.0, "at least 2 segments, not 0"),
        (-3, 5.0, "at least 2 segments, not -3"),
        (33, 5.0, "at most 32 segments, not 33"),
        (4, 0.0, "more than 0 and at most 60 s, not 0.0"),
        (4, -1.0, "not -1.0"),
        (4, 61.0, "not 61.0"),
        (4, math.nan, "not nan"),
    ],
)
def test_a_storyboard_the_video_cannot_be_made_of_is_refused(faulty_llm, segments, seconds, words):
    with pytest.raises(InvalidStoryboard, match=words):
        storyboard_offline("cat", segments, seconds)
    refiner, model = refiner_for(faulty_llm, "ok")
    with pytest.raises(InvalidStoryboard, match=words):
        refiner.storyboard("cat", segments, seconds, FAMILY)
    assert faulty_llm.calls[model] == 0  # refused before any request


def test_other_caller_mistakes():
    with pytest.raises(TypeError, match="segments must be an int"):
        storyboard_offline("cat", 3.0, 5.0)  # type: ignore[arg-type]
    with pytest.raises(UnknownFamily, match="unknown model family 'sora'"):
        PromptRefiner(None).storyboard("cat", 3, 5.0, "sora")


def test_no_endpoint_means_the_offline_storyboard():
    board = PromptRefiner(None).storyboard("猫转头", 3, 5.0)
    assert_contract(board, 3, "offline")
    assert str(board.warnings[0]) == "no LLM endpoint is configured" and board.family == FAMILY


def test_segment_limits_match_the_engine():
    """prompting must not import i2v (nor the reverse), so each spells the limit out: keep them equal."""
    from i2v.request import GenerationRequest

    limits = [m.max_length for m in GenerationRequest.model_fields["segments"].metadata if hasattr(m, "max_length")]
    assert limits == [MAX_SEGMENTS]


def test_every_family_has_a_storyboard_prompt():
    from prompting.config import styles

    for family in styles():
        prompt = storyboard_prompt(family)
        assert f"at most {style(family).word_budget} words" in prompt and "{" not in prompt
        assert "<request>" in prompt and not prompt.startswith("<!--")


# ---------------------------------------------------------------------- canned replies
def canned(monkeypatch, *contents: str, model: str = "canned") -> PromptRefiner:
    """A refiner whose endpoint answers `contents` in turn (the transport is tested elsewhere)."""
    refiner = PromptRefiner(Endpoint("http://127.0.0.1:9/v1", model, SECRET), timeout_s=TIMEOUT)
    replies = iter(contents)

    def complete(messages, deadline, mode=None, reply=None):
        return next(replies), "json_schema"

    monkeypatch.setattr(refiner.client, "complete", complete)
    return refiner


def reply(*segments: str, negative: str = "blurry") -> str:
    return json.dumps({"segments": list(segments), "negative_prompt": negative})


def test_a_good_reply_is_used(monkeypatch):
    board = canned(monkeypatch, reply(" The cat looks up. ", "It turns its head left.", "It settles.")).storyboard(
        "猫转头", 3, 5.0
    )
    assert_contract(board, 3, "llm")
    assert board.segments == ["The cat looks up.", "It turns its head left.", "It settles."]
    assert board.model == "canned" and board.negative_prompt == "blurry" and board.warnings == []
    assert board.original == "猫转头" and board.language == "zh" and board.translated and board.seconds >= 0


def test_extra_prompts_are_cut_and_missing_ones_continue_from_the_last(monkeypatch):
    many = canned(monkeypatch, reply("one.", "two.", "three.", "four.", "")).storyboard("the cat", 3, 5.0)
    assert many.segments == ["one.", "two.", "three."]  # the fifth, blank, is beyond the count: never judged
    assert [str(w) for w in many.warnings] == ["the LLM wrote 5 prompts for 3 segments: the first 3 are kept"]

    few = canned(monkeypatch, reply("The cat turns its head.")).storyboard("猫转头", 3, 5.0)
    assert_contract(few, 3, "llm")
    assert few.segments[0] == "The cat turns its head."
    assert all(p.startswith(LEAD) and p.endswith("The cat turns its head.") for p in few.segments[1:])
    assert "same cat" in few.segments[1] and "settles" in few.segments[2]
    assert [w.code for w in few.warnings] == ["storyboard.padded"]
    assert "the last 2 continue from its last prompt" in str(few.warnings[0])


def test_an_invalid_reply_is_repaired_once_then_falls_back(monkeypatch):
    repaired = canned(monkeypatch, '{"segments": []}', reply("a.", "b.")).storyboard("cat", 2, 5.0)
    assert_contract(repaired, 2, "llm")
    assert [w.code for w in repaired.warnings] == ["refiner.repaired"]

    broken = canned(monkeypatch, '{"segments": ["a", ', '{"prompt": "a cat"}').storyboard("cat", 2, 5.0)
    assert_contract(broken, 2, "offline")
    assert broken.warnings[0].code == "refiner.invalid_twice" and "segments" in str(broken.warnings[0])


def test_prompts_are_cut_scrubbed_and_checked(monkeypatch):
    long = " ".join(["The cat turns its head slowly."] * 40)
    board = canned(monkeypatch, reply(long, f"猫 keeps turning, key {SECRET}.", long)).storyboard(
        "cat", 3, 5.0, "ltx-video"
    )
    assert_contract(board, 3, "llm")
    assert all(len(p.split()) <= 90 for p in board.segments)  # LTX's word budget
    codes = [w.code for w in board.warnings]
    assert codes == ["storyboard.cut_words", "refiner.non_english", "storyboard.repeated"]
    assert str(board.warnings[0]) == "2 of the storyboard's prompts were cut to 90 words, the budget for ltx-video"
    assert "segment(s) 3 repeat" in str(board.warnings[2])
    assert "***" in board.segments[1]


# ---------------------------------------------------------------------- the faulty server
def refiner_for(server, fault: str, timeout: float = TIMEOUT) -> tuple[PromptRefiner, str]:
    model = f"{fault}#{uuid.uuid4().hex[:8]}"  # a fresh call counter and a fresh remembered mode
    return PromptRefiner(Endpoint(server.base_url, model, SECRET), timeout_s=timeout), model


def test_the_request_asks_for_exactly_n_prompts(faulty_llm):
    refiner, model = refiner_for(faulty_llm, "truncated")
    refiner.storyboard("猫转头", 3, 4.0, "ltx-video")
    first = next(r["body"] for r in faulty_llm.requests if r["body"]["model"] == model)
    assert first["response_format"]["json_schema"]["name"] == "storyboard"
    assert first["response_format"]["json_schema"]["schema"] == storyboard_json_schema(3)
    assert storyboard_json_schema(3)["properties"]["segments"]["minItems"] == 3
    sized = storyboard_defaults()
    assert first["max_tokens"] == 3 * sized.reply_tokens_per_segment + sized.reply_tokens_extra
    assert first["messages"][0]["content"] == storyboard_prompt("ltx-video")
    user = first["messages"][1]["content"]
    assert "Target model family: ltx-video." in user and "Segments: 3, each 4 seconds long (12 seconds in all)." in user
    assert user.endswith("<request>猫转头</request>")


@pytest.mark.parametrize(
    ("fault", "warning"),
    [
        ("truncated", "not valid twice"),  # broken JSON, twice
        ("ok", "segments: Field required"),  # a refined prompt where a storyboard was asked for, twice
        ("500", "HTTP 500"),
        ("401", "refused the API key (401)"),
        ("hang", f"within {TIMEOUT:g} s"),
    ],
)
def test_every_fault_gives_the_offline_storyboard_with_the_reason(faulty_llm, fault, warning):
    refiner, model = refiner_for(faulty_llm, fault)
    started = time.monotonic()
    board = refiner.storyboard("猫转头", 3, 5.0)
    assert time.monotonic() - started < TIMEOUT + 1.5
    assert_contract(board, 3, "offline")
    assert warning in str(board.warnings[0]), board.warnings
    assert board.segments == storyboard_offline("猫转头", 3, 5.0).segments


def test_connection_refused():
    endpoint = Endpoint(f"http://127.0.0.1:{free_port()}/v1", "any", SECRET)
    board = PromptRefiner(endpoint, timeout_s=TIMEOUT).storyboard("cat", 2, 5.0)
    assert_contract(board, 2, "offline")
    assert "could not connect" in str(board.warnings[0])


def test_the_time_budget_grows_with_the_segments():
    refiner = PromptRefiner(Endpoint("http://127.0.0.1:9/v1", "m"), timeout_s=30, max_tokens=800)
    sized = storyboard_defaults()
    assert refiner._storyboard_reply(2).timeout_s == 30  # never less than one refinement's
    big = refiner._storyboard_reply(MAX_SEGMENTS)
    assert big.max_tokens == MAX_SEGMENTS * sized.reply_tokens_per_segment + sized.reply_tokens_extra
    assert big.timeout_s == pytest.approx(30 * big.max_tokens / 800, abs=0.1)


# ---------------------------------------------------------------------- the command line
def test_command_line(faulty_llm):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "I2V_LLM_MODEL")}
    run = lambda *args, **extra: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "prompting", *args], capture_output=True, text=True, env={**env, **extra}
    )
    offline = run("猫转头", "--segments", "3", "--seconds", "4", "--json")
    assert offline.returncode == 0, offline.stderr
    board = Storyboard.model_validate_json(offline.stdout)
    assert len(board.segments) == 3 and board.seconds_each == 4.0 and board.source == "offline"
    human = run("猫转头", "--segments", "2")
    assert human.stdout.startswith("1. [0-5 s] 猫转头") and "\n2. [5-10 s] Continuing" in human.stdout
    assert "source: offline" in human.stdout and "warning: no LLM wrote this storyboard" in human.stdout
    remote = run("cat", "--segments", "2", "--json", OPENAI_BASE_URL=faulty_llm.base_url, I2V_LLM_MODEL="truncated#cli")
    assert json.loads(remote.stdout)["warnings"][0]["code"] == "refiner.invalid_twice"
    for segments, words in (("1", "at least 2 segments"), ("33", "at most 32 segments")):
        bad = run("cat", "--segments", segments)
        assert bad.returncode == 2 and words in bad.stderr and not bad.stdout


# ---------------------------------------------------------------------- the real server
# The budget, as tests/test_refiner_llama.py sets its own: SAFETY times the slowest storyboard that
# ends by itself (the reply and one repair both run to max_tokens), at the speed the server shows now
# or at the speed it showed with a busy process on each of the 2 CI cores, whichever is slower.
LOADED_PROMPT_PER_S, LOADED_REPLY_PER_S = 70.0, 20.0  # measured there; rounded down
SAFETY = 2
SEGMENTS = 3


@pytest.fixture(scope="module")
def llama_refiner(llama_url):
    max_tokens = SEGMENTS * storyboard_defaults().reply_tokens_per_segment + storyboard_defaults().reply_tokens_extra
    system = storyboard_prompt(FAMILY)
    messages = [{"role": "system", "content": system}, {"role": "user", "content": "<request>the cat yawns</request>"}]
    schema = {"type": "json_schema", "json_schema": {"name": "storyboard", "schema": storyboard_json_schema(2)}}
    now = timed_chat(llama_url, messages, 48, schema)  # also puts the system prompt in the server's cache
    prompt_tokens = now.prompt_tokens + 100 + max_tokens + 100  # the request, then the repair quoting the reply
    prompt_per_s = min(now.prompt_per_s if now.prompt_tokens >= 200 else LOADED_PROMPT_PER_S, LOADED_PROMPT_PER_S)
    slowest = prompt_tokens / prompt_per_s + 2 * max_tokens / min(now.reply_per_s, LOADED_REPLY_PER_S)
    budget = SAFETY * slowest
    print(f"llama-server now: {now}; storyboard budget {budget:.0f} s, max_tokens {max_tokens}")
    # The refiner's max_tokens is at least the storyboard's, so the storyboard's budget is `budget` itself.
    refiner = PromptRefiner(Endpoint(llama_url, MODEL_NAME), timeout_s=budget, max_tokens=max_tokens)
    assert refiner._storyboard_reply(SEGMENTS).timeout_s == pytest.approx(budget, abs=0.1)
    return refiner


def check_real(board: Storyboard, segments: int, family: str):
    assert_contract(board, segments)
    assert all(len(p.split()) <= style(family).word_budget for p in board.segments)
    codes = [w.code for w in board.warnings]
    if board.source == "llm":
        assert board.model == MODEL_NAME and board.seconds > 0
        # llama-server turns the schema into a grammar: minItems = maxItems = N leaves no other count.
        assert "storyboard.padded" not in codes and "storyboard.truncated" not in codes
    else:  # allowed for a 135M model, but only with the reason said
        assert codes[0] in ("refiner.invalid_twice", "refiner.timeout"), board.warnings


def test_storyboards_through_the_real_server(llama_refiner):
    board = llama_refiner.storyboard("猫转头", SEGMENTS, 5.0, FAMILY)
    print(board.source, board.seconds, board.segments, board.warnings)
    check_real(board, SEGMENTS, FAMILY)
    assert llama_refiner.client.mode == "json_schema"
    english = llama_refiner.storyboard("the waves roll onto the beach", 2, 4.0, "ltx-video")
    print(english.source, english.seconds, english.segments, english.warnings)
    check_real(english, 2, "ltx-video")
    assert "llm" in (board.source, english.source), (board.warnings, english.warnings)
