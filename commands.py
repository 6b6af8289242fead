"""The `i2v` command: `i2v batch` (video jobs from a JSONL file, through the studio's job store or a
running server, studio/batch.py) and every engine command of i2v/cli.py (which knows nothing of the
studio: the engine never imports it)."""

from __future__ import annotations

import sys

BATCH_HELP = "  batch               run a JSONL file of video jobs, resumably (`i2v batch --help`)"


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
    return engine(argv)


if __name__ == "__main__":
    sys.exit(main())
