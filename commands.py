"""The `i2v` command: `i2v batch` (video jobs from a JSONL file, through the studio's job store or a
running server, studio/batch.py), `i2v serve` (the studio's server: the page and the REST API on this
box, as start_app.sh starts it, or with `--ray ADDRESS` the REST API on a Ray cluster of several
boxes, studio/cluster.py) and every engine command of i2v/cli.py (which knows nothing of the studio:
the engine never imports it). Here the two meet: `generate --duration` gets its storyboard from the
prompt refiner (the LLM of the settings, else the offline rules)."""

from __future__ import annotations

import sys

BATCH_HELP = "  batch               run a JSONL file of video jobs, resumably (`i2v batch --help`)"
SERVE_HELP = "  serve               the studio's server; --ray ADDRESS: on a Ray cluster (`i2v serve --help`)"


def storyboard(words: str, segments: int, seconds_each: float, family: str) -> list[str]:
    """A long video's prompts, one per segment, by the refiner of the settings (settings.py:
    OPENAI_BASE_URL, I2V_LLM_MODEL, ...; offline rules without an endpoint). What it warns of goes
    to stderr."""
    from pydantic import ValidationError

    from i2v.errors import InvalidInput
    from messages import MessageError
    from settings import Settings, problems
    from studio.hosting import make_refiner

    try:
        settings = Settings()
    except ValidationError as exc:
        details = "; ".join(problems(exc))
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


def serve(argv: list[str]) -> int:
    """`i2v serve`: the page and the REST API on this box (app.py, as start_app.sh starts it, without
    installing); `i2v serve --ray ADDRESS`: the REST API on the Ray cluster at ADDRESS, one replica per
    GPU (or per --gpus-per-replica G; 0 for CPU replicas), until Ctrl-C; `--stop` stops what an
    earlier run left running there. Settings come from the environment as for the app (I2V_*)."""
    import argparse
    import os

    from messages import note

    def count(option: str, minimum: int):
        def parse(text: str) -> int:
            try:
                value = int(text)
            except ValueError:
                value = None
            if value is None or value < minimum:
                raise argparse.ArgumentTypeError(str(note("cluster.bad_count", option=option, value=text,
                                                          minimum=minimum)))  # fmt: skip
            return value

        return parse

    parser = argparse.ArgumentParser(prog="i2v serve", description="Start the i2v studio's server: the page and the "
                                     "REST API on this box, or with --ray the REST API on a Ray cluster.")  # fmt: skip
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1; I2V_HOST; 0.0.0.0 for a cluster)")
    parser.add_argument("--port", type=int, help="port (default 7860; I2V_PORT): on a cluster, every node's")
    parser.add_argument("--model", help="family id, local model folder, camera or auto (I2V_MODEL)")
    parser.add_argument("--share", action="store_true", help="also make a public gradio.live link (this box only)")
    parser.add_argument("--ray", metavar="ADDRESS", help="serve on the Ray cluster at ADDRESS (HOST:6379, auto, "
                        "ray://HOST:10001), from its head node: the job store's database stays on this node's "
                        "disk")  # fmt: skip
    parser.add_argument("--replicas", type=count("--replicas", 1), help="replicas (default: one per "
                        "--gpus-per-replica GPUs of the cluster; 1 with --gpus-per-replica 0)")  # fmt: skip
    parser.add_argument("--gpus-per-replica", type=count("--gpus-per-replica", 0), default=None,
                        help="GPUs of each replica (default 1; 0: CPU replicas, for tests)")  # fmt: skip
    parser.add_argument("--stop", action="store_true", help="with --ray: stop the studio an earlier run left running")
    args = parser.parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported, as start_app.sh sets it
    if args.ray is None:
        for option, given in (("--replicas", args.replicas), ("--gpus-per-replica", args.gpus_per_replica),
                              ("--stop", args.stop or None)):  # fmt: skip
            if given is not None:
                parser.error(str(note("cluster.ray_only", option=option)))
        from app import main as app

        given = [*(["--host", args.host] if args.host else []), *(["--port", str(args.port)] if args.port else []),
                 *(["--model", args.model] if args.model else []), *(["--share"] if args.share else [])]  # fmt: skip
        return app(given)
    return _serve_on_ray(args)


def _serve_on_ray(args) -> int:
    from messages import note
    from settings import load

    try:
        import ray.serve  # noqa: F401 - Ray with its Serve part (ray[serve])
    except ImportError:
        print(f"i2v serve: error: {note('cluster.no_ray')}", file=sys.stderr)
        return 2
    overrides = {key: value for key, value in (("host", args.host), ("port", args.port), ("model", args.model))
                 if value is not None}  # fmt: skip
    settings = load(**overrides)
    if settings is None:
        return 2
    from studio.cluster import ClusterError, main

    gpus = 1 if args.gpus_per_replica is None else args.gpus_per_replica
    try:
        return main(settings, args.ray, replicas=args.replicas, gpus=gpus, stopping=args.stop)
    except ClusterError as exc:
        print(f"i2v serve: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["batch"]:
        from studio.batch import main as batch

        return batch(argv[1:])
    if argv[:1] == ["serve"]:
        return serve(argv[1:])
    from i2v.cli import main as engine

    if argv in ([], ["-h"], ["--help"]):
        try:
            return engine(argv)
        finally:
            print(BATCH_HELP)
            print(SERVE_HELP)
    return engine(argv, storyboard=storyboard)


if __name__ == "__main__":
    sys.exit(main())
