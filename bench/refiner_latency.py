"""Latency of one refinement against the test server: llama-server + SmolLM2-135M on this CPU.

Runs every prompt of tests/data/prompts.jsonl through PromptRefiner (json_schema mode),
and the offline refiner for comparison, and prints a Markdown table for docs/PERFORMANCE.md.

    .venv/bin/python bench/refiner_latency.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from llama import MODEL_NAME, llama_server  # noqa: E402

from prompting import Endpoint, PromptRefiner, refine_offline  # noqa: E402

PROMPTS = ROOT / "tests" / "data" / "prompts.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    entries = [json.loads(line) for line in PROMPTS.read_text(encoding="utf-8").splitlines() if line]
    with llama_server(Path(tempfile.mkdtemp()) / "llama.log") as url:
        refiner = PromptRefiner(Endpoint(url, MODEL_NAME), timeout_s=60)
        refiner.refine("warm up", "wan2.2-ti2v-5b")
        llm, sources = [], []
        for _ in range(args.rounds):
            for entry in entries:
                result = refiner.refine(entry["prompt"], "wan2.2-ti2v-5b")
                llm.append(result.seconds)
                sources.append(result.source)
    offline = []
    for entry in entries:
        started = time.perf_counter()
        refine_offline(entry["prompt"], "wan2.2-ti2v-5b")
        offline.append(time.perf_counter() - started)
    llm.sort()
    print("| refiner | runs | median s | p90 s | max s | answered by the LLM |")
    print("|---|---|---|---|---|---|")
    p90 = llm[int(0.9 * (len(llm) - 1))]
    print(f"| llama-server, SmolLM2-135M Q4_1, 1 CPU thread | {len(llm)} | {statistics.median(llm):.2f} | "
          f"{p90:.2f} | {llm[-1]:.2f} | {sources.count('llm')}/{len(sources)} |")  # fmt: skip
    print(f"| offline rules | {len(offline)} | {statistics.median(offline) * 1000:.2f} ms | - | "
          f"{max(offline) * 1000:.2f} ms | - |")  # fmt: skip


if __name__ == "__main__":
    main()
