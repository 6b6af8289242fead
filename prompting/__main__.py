"""`python -m prompting TEXT`: refine one prompt and print the result; with `--segments N`, print a
storyboard of N prompts for a long video instead (`--seconds` each). `--reference PATH[=LABEL]`
(repeatable), `--motion`, `--style`, `--color-palette`, `--camera-motion` and `--motion-intensity`
(the refiner's 0-1 scale) are the person's choices the prompt honours.

The endpoint comes from the flags, else from OPENAI_BASE_URL, OPENAI_API_KEY and I2V_LLM_MODEL;
with none, the offline refiner answers. Exit 2 for bad input.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from .client import Endpoint
from .config import looks, styles
from .errors import InvalidChoice, InvalidStoryboard
from .refiner import PromptRefiner
from .schema import CAMERA_MOTIONS, MAX_REFERENCES, MAX_SEGMENTS, MIN_SEGMENTS, Storyboard


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prompting", description="Refine a short video prompt.")
    parser.add_argument("text", help="the prompt, in any language (may be empty: '')")
    parser.add_argument("--image", type=Path, help="the photo to animate (sent to vision-capable endpoints)")
    parser.add_argument("--family", default=None, choices=sorted(styles()), help="the video model to write for")
    parser.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL"), help="OpenAI-compatible /v1 URL")
    parser.add_argument("--model", default=os.environ.get("I2V_LLM_MODEL"), help="the LLM's model name")
    parser.add_argument("--vision", action="store_true", default=os.environ.get("I2V_LLM_VISION", "") in ("1", "true"),
                        help="the model can see images: send the photo")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=None, help="seconds for the whole refinement")
    parser.add_argument("--segments", type=int, default=None,
                        help=f"write a storyboard: one prompt for each of N ({MIN_SEGMENTS}-{MAX_SEGMENTS}) segments")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long each storyboard segment lasts (default 5)")
    parser.add_argument("--reference", action="append", default=[], metavar="PATH[=LABEL]",
                        help="a subject's reference photo or clip, and who or what it is (repeatable, at most "
                        f"{MAX_REFERENCES})")  # fmt: skip
    parser.add_argument("--motion", default=None, help="a motion template's words the prompt must describe")
    parser.add_argument("--style", default=None, choices=sorted(looks()["styles"]), help="the look")
    parser.add_argument("--color-palette", default=None, choices=sorted(looks()["palettes"]), help="the colours")
    parser.add_argument("--camera-motion", default=None, choices=CAMERA_MOTIONS, help="the camera move")
    parser.add_argument("--motion-intensity", type=float, default=None, help="how much moves, 0 (barely) to 1 (a lot)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    if args.image is not None and not args.image.is_file():
        print(f"error: photo {args.image} does not exist", file=sys.stderr)
        return 2
    references = []
    for spec in args.reference:
        path, _, label = spec.partition("=")
        if not Path(path).is_file():
            print(f"error: reference {path} does not exist", file=sys.stderr)
            return 2
        references.append((label, Path(path)))
    if args.timeout is not None and args.timeout <= 0:
        print(f"error: --timeout {args.timeout:g} must be more than 0", file=sys.stderr)
        return 2

    endpoint = None
    if args.base_url and args.model:
        endpoint = Endpoint(args.base_url, args.model, os.environ.get("OPENAI_API_KEY"), args.vision)
    elif args.base_url or args.model:
        print("error: an LLM endpoint needs both --base-url (OPENAI_BASE_URL) and --model (I2V_LLM_MODEL)",
              file=sys.stderr)  # fmt: skip
        return 2
    refiner = PromptRefiner(endpoint, timeout_s=args.timeout)
    if args.segments is not None:
        try:
            board = refiner.storyboard(args.text, args.segments, args.seconds, args.family, args.image,
                                       style=args.style, color_palette=args.color_palette)  # fmt: skip
        except InvalidStoryboard as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return _print_storyboard(board, args.json)
    try:
        result = refiner.refine(args.text, args.family, args.image, references=references, motion=args.motion,
                                style=args.style, color_palette=args.color_palette, camera_motion=args.camera_motion,
                                motion_intensity=args.motion_intensity)  # fmt: skip
    except InvalidChoice as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(result.model_dump_json())
        return 0
    print(result.prompt)
    if not result.translated:
        print(f"  not translated: the prompt is still in {result.prompt_language} (no LLM refined it)")
    print(f"  camera: {result.camera_motion}   tags: {', '.join(result.motion_tags) or '-'}   "
          f"intensity: {result.motion_intensity:.2f}   subjects: {', '.join(result.subjects) or '-'}")  # fmt: skip
    print(f"  negative: {result.negative_prompt or '-'}")
    advice = result.suggestions.model_dump(exclude_none=True)
    print(f"  advice: {', '.join(f'{k} {v:g}' for k, v in advice.items()) or '-'} (within {result.family}'s bounds)")
    print(f"  source: {result.source}{' (' + result.model + ')' if result.model else ''}, {result.seconds:.1f}s")
    for warning in result.warnings:
        print(f"  warning: {warning}")
    return 0


def _print_storyboard(board: Storyboard, as_json: bool) -> int:
    if as_json:
        print(board.model_dump_json())
        return 0
    for number, prompt in enumerate(board.segments, 1):
        start = (number - 1) * board.seconds_each
        print(f"{number}. [{start:g}-{start + board.seconds_each:g} s] {prompt}")
    if not board.translated:
        print(f"  not translated: the prompts are still in {board.prompt_language} (no LLM wrote them)")
    print(f"  negative: {board.negative_prompt or '-'}")
    print(f"  source: {board.source}{' (' + board.model + ')' if board.model else ''}, {board.seconds:.1f}s")
    for warning in board.warnings:
        print(f"  warning: {warning}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
