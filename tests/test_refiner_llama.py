"""The refiner against a real OpenAI-compatible server (llama-server + SmolLM2-135M on the CPU),
and the shared regression prompts through both the real server and the offline refiner.

A 135M model writes poor prose: these tests assert types and invariants, never wording.
"""

from __future__ import annotations

import json

import pytest

from conftest import IMAGES, TESTDATA
from llama import MODEL_NAME, Speed, busy_cpus, timed_chat
from prompting import Endpoint, PromptRefiner, refine_offline
from prompting.config import system_prompt
from prompting.schema import CAMERA_MOTIONS, MOTION_TAGS, RefinedPrompt, reply_json_schema

ENTRIES = [json.loads(line) for line in (TESTDATA / "prompts.jsonl").read_text(encoding="utf-8").splitlines() if line]


def check(result: RefinedPrompt, entry: dict):
    RefinedPrompt.model_validate(result.model_dump())
    assert result.prompt.strip() and result.camera_motion in CAMERA_MOTIONS
    assert set(result.motion_tags) <= set(MOTION_TAGS) and 0 <= result.motion_intensity <= 1
    assert result.original == entry["prompt"]


# The time budget and max_tokens, from what the server does. Measured on the 2-core CI machine
# (AMD EPYC VM), llama-server -t 1 with SmolLM2-135M Q4_1, requests shaped like the refiner's
# (json_schema: grammar-constrained sampling halves generation speed, 53-63 tokens/s without it
# against 28-33 with it under load, so every measurement here asks for the schema):
#
#                                   quiet machine     two busy processes pinned to the 2 cores
#   prompt processing, cold         135-200 tokens/s  72-81 tokens/s (a 542-token prompt: 6.7 s)
#   generation                      43-76 tokens/s    21-30 tokens/s
#   one refinement (1 request)      2.3-8 s           4.4-16 s
#
# Prompts are 420-570 tokens, nearly all system prompt; with one slot the server keeps the last
# prompt's KV cache, so only a family's first request pays the full prompt (the others process
# 9-44 tokens). Replies took 116-307 tokens (median ~155) over ~150 replies: the 19 requests of
# this file at 5 seeds and 3 server settings. The old setup (-t 2, max_tokens 800, 60 s) fell to
# 1-23 tokens/s under the same load (a 150-token reply in 50-125 s), so a single reply could
# overrun the budget: that is what failed (tests/llama.py says why one thread).
#
# MAX_TOKENS is 1.65x the longest reply seen; a reply that runs that long is a 135M model looping,
# and cuts off as invalid JSON. The slowest refinement that ends by itself is then a full-length
# reply plus a full-length repair: 1212 prompt tokens and 1024 generated, 25-33 s on a quiet machine
# and 65 s under the load above. That, not the budget, bounds what a looping model costs.
# The budget is SAFETY times that slowest refinement, at the speed this machine shows now (one
# real refiner request, which also warms the cache) or the loaded speed above if that is slower:
# 137 s here, so a refinement that does end gets twice its worst case even if the load arrives
# after the measurement, and a hung server still fails the test.
MAX_TOKENS = 512
PROMPT_TOKENS = 600  # the longest request: system prompt and request (570 tokens measured)
REPAIR_TOKENS = 100  # the repair request's own words, besides the reply it quotes
LOADED_PROMPT_PER_S, LOADED_REPLY_PER_S = 70.0, 20.0  # the loaded speeds above, rounded down
SAFETY = 2
BUDGET_CAP_S = 600.0  # a machine slower than this cannot run the file in reasonable time anyway
SCHEMA = {
    "type": "json_schema",
    "json_schema": {"name": "refined_prompt", "schema": reply_json_schema(), "strict": False},
}


def worst_refinement_s(prompt_per_s: float, reply_per_s: float) -> float:
    """Seconds for the slowest refinement that ends by itself: the reply and its repair both run to
    MAX_TOKENS. The repair request reads the reply it quotes; the rest of its prompt is cached."""
    prompt_tokens = PROMPT_TOKENS + MAX_TOKENS + REPAIR_TOKENS
    return prompt_tokens / prompt_per_s + 2 * MAX_TOKENS / reply_per_s


def budget_s(now: Speed) -> float:
    prompt_per_s = now.prompt_per_s if now.prompt_tokens >= 200 else LOADED_PROMPT_PER_S  # few tokens: noise
    slowest = worst_refinement_s(min(prompt_per_s, LOADED_PROMPT_PER_S), min(now.reply_per_s, LOADED_REPLY_PER_S))
    return min(BUDGET_CAP_S, SAFETY * slowest)


def refiner_messages(text: str, family: str = "wan2.2-ti2v-5b", system: str | None = None) -> list[dict]:
    """The messages PromptRefiner sends for `text` (with another system prompt if given)."""
    return [
        {"role": "system", "content": system_prompt(family) if system is None else system},
        {"role": "user", "content": f"Target model family: {family}.\n<request>{text}</request>"},
    ]


@pytest.fixture(scope="module")
def refiner(llama_url):
    # A real first request (it warms the cache for the regression prompts); 64 tokens time the
    # generation as well as a whole reply does (28.6 and 31.2 tokens/s against 29.1 and 29.3, loaded).
    now = timed_chat(llama_url, refiner_messages("the cat yawns"), 64, SCHEMA)
    budget = budget_s(now)
    print(f"llama-server now: {now}; budget {budget:.0f} s, max_tokens {MAX_TOKENS}")  # shown when a test fails
    return PromptRefiner(Endpoint(llama_url, MODEL_NAME), timeout_s=budget, max_tokens=MAX_TOKENS)


def test_regression_prompts_through_the_real_server(refiner):
    results = []
    for entry in ENTRIES:
        image = IMAGES / entry["image"] if entry["image"] else None
        result = refiner.refine(entry["prompt"], "wan2.2-ti2v-5b", image)
        check(result, entry)
        if result.source == "offline":  # allowed, but only with the reason said
            assert "no LLM refined this prompt" in " ".join(map(str, result.warnings))
        else:
            assert result.model == MODEL_NAME and result.seconds > 0
        results.append(result)
    from_llm = [r for r in results if r.source == "llm"]
    # A 135M model sometimes loops until max_tokens; the fallback covers it, but it must be rare.
    assert len(from_llm) >= len(ENTRIES) - 2, [(r.original, r.warnings) for r in results if r.source != "llm"]


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["id"] for e in ENTRIES])
def test_regression_prompt_offline(entry):
    result = refine_offline(entry["prompt"], "wan2.2-ti2v-5b", has_image=entry["image"] is not None)
    check(result, entry)
    assert result.source == "offline"
    if entry["expect_camera"]:
        assert result.camera_motion == entry["expect_camera"]
    for tag in entry.get("expect_tags", []):
        assert tag in result.motion_tags
    if entry["prompt"] and any(ord(ch) > 0x2E80 for ch in entry["prompt"]):
        assert any("cannot translate" in str(w) for w in result.warnings)


def test_the_real_server_takes_json_schema(refiner, llama_url):
    refiner.refine("the cat yawns", "ltx-video")
    assert refiner.client.mode == "json_schema"


def test_every_family_prompt_works_with_the_real_server(refiner):
    for family in ("ltx-video", "cogvideox-5b-i2v", "hunyuanvideo-i2v", "i2vgen-xl", "svd-xt", "camera"):
        result = refiner.refine("海浪动", family)
        assert result.family == family and result.source == "llm", result.warnings


def test_the_budget_holds_on_a_busy_machine(refiner, llama_url):
    """With a busy process on every CPU, the slowest refinement that ends by itself still fits the
    budget. Under the old setup (two server threads, max_tokens 800, 60 s) it came out at 230 and 1073 s."""
    # A new first line makes the prompt miss the cache, so prompt processing is timed too; the end of
    # the system prompt (~330 tokens) times it as well as the whole one and takes half as long.
    messages = refiner_messages("the cat yawns", system="(timing run)\n" + system_prompt("wan2.2-ti2v-5b")[-1000:])
    with busy_cpus() as spinners:
        loaded = timed_chat(llama_url, messages, 64, SCHEMA)
    worst = worst_refinement_s(loaded.prompt_per_s, loaded.reply_per_s)
    print(f"{spinners} busy processes: {loaded}; worst refinement {worst:.0f} s, budget {refiner.timeout_s:.0f} s")
    assert loaded.prompt_tokens >= 200 and loaded.reply_tokens >= 32, loaded  # enough tokens to time
    assert worst <= refiner.timeout_s, f"{spinners} busy processes: {loaded}; worst {worst:.0f} s"
