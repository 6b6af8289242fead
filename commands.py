"""The `i2v` command: `i2v batch` (video jobs from a JSONL file, through the studio's job store or a
running server, studio/batch.py) and every engine command of i2v/cli.py (which knows nothing of the
studio: the engine never imports it). Here the two meet: `generate --duration` gets its storyboard
from the prompt refiner (the LLM of the settings, else the offline rules)."""

from __future__ import annotations

import sys

BATCH_HELP = "  batch               run a JSONL file of video jobs, resumably (`i2v batch --help`)"


def storyboard(words: str, segments: int, seconds_each: float, family: str) -> list[str]:
    """A long video's prompts, one per segment, by the refiner of the settings (settings.py:
    OPENAI_BASE_URL, I2V_LLM_MODEL, ...; offline rules without an endpoint). What it warns of goes
    to stderr."""
    from pydantic import ValidationError

    from i2v.errors import InvalidInput
    from messages import MessageError
    from settings import Settings
    from studio.hosting import make_refiner

    try:
        settings = Settings()
    except ValidationError as exc:
        details = "; ".join(f"settings: {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidInput("request.invalid", details=details) from None
    try:
        board = make_refiner(settings).storyboard(words, segments, seconds_each, family)
    except MessageError as exc:  # a storyboard the video cannot be made of: the person's to change
        raise InvalidInput("request.invalid", details=str(exc)) from None
    who = f"the LLM {board.model}" if board.source == "llm" else "the offline rules"
    print(f"storyboard by {who}", file=sys.stderr)
    for said in board.warnings:
        print(f"  storyboard note: {said}", file=sys.stderr)
    return list(board.segments)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["batch"]:
        from studio.batch import main as batch

        return batch(argv[1:])
    from i2v.cli import main as engine

    if argv in ([], ["-h"], ["--help"]):
        try:
            return engine(argv)
        finally:
            print(BATCH_HELP)
    return engine(argv, storyboard=storyboard)


if __name__ == "__main__":
    sys.exit(main())
