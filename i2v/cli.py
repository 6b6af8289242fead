"""The `i2v` command: list models, make tiny test models, generate a video from a photo.

Exit codes: 0 done, 1 the model could not run (missing weights, out of memory), 2 bad input
(one line on stderr, no file written), 130 stopped with Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import UnionType
from typing import Literal, Union, get_args, get_origin

from pydantic import ValidationError

from .errors import Cancelled, I2VError, InvalidInput
from .memory import RunShape
from .request import GenerationRequest, Segment, style_name

EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 1, 2, 130
# A storyboard writer (the `i2v` command gives one: the LLM of OPENAI_BASE_URL, else the offline
# rules): the person's words, the segments' count and seconds, the model family -> one prompt each.
Storyboard = Callable[[str, int, float, str], list[str]]
DURATION_NOTE = ("with one --prompt and no --segment, the `i2v` command writes a storyboard, one prompt per segment "
                 "(by the LLM of OPENAI_BASE_URL, else offline rules); `python -m i2v.cli` continues the same "
                 "prompt in every segment")  # fmt: skip


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, like every other bad input
        self.exit(EXIT_BAD_INPUT, f"i2v: error: {message} (see `{self.prog} --help`)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="i2v", description="Image-to-video from the command line.")
    parser.add_argument("--version", action="version", version=f"i2v {_version()}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the engine does")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    models = commands.add_parser("models", help="list the model families and whether their weights are here")
    models.add_argument("--json", action="store_true", help="print one JSON array")

    templates = commands.add_parser("templates", help="list the motion templates (--template NAME)")
    templates.add_argument("--model", help="a family id: the frames and guidance each template suggests for it")
    templates.add_argument("--json", action="store_true", help="print one JSON array")

    tiny = commands.add_parser("make-tiny", help="write a tiny random-weight model of a family (for tests and demos)")
    tiny.add_argument("family")
    tiny.add_argument("directory", type=Path)

    plan = commands.add_parser("plan", help="the preset for a GPU, estimates, and a downgrade plan when it will not fit")
    where = plan.add_mutually_exclusive_group(required=True)
    where.add_argument("--vram-gb", type=float, help="plan for a card with this much free memory")
    where.add_argument("--detect", action="store_true", help="plan for the GPU found here: the one --device names")
    plan.add_argument("--device", default=os.environ.get("I2V_DEVICE"),
                      help="with --detect: the GPU to plan for, cuda:1 say (default: I2V_DEVICE, else GPU 0)")
    plan.add_argument("--ram-gb", type=float, help="host RAM for offloaded weights (with --vram-gb; --detect reads it)")
    plan.add_argument("--gpu", help="the kind of GPU, for time estimates: H200, H100, A100, 4090, ... (with --vram-gb; "
                                    "--detect reads it; default: an unknown GPU)")  # fmt: skip
    plan.add_argument("--model", help="estimate this family with the settings below, instead of picking one")
    # --interpolate, --upscale and --segments default to None: given without --model, they are refused
    add_knobs(plan, [*RunShape.knobs(), "speed", "interpolate", "upscale"],
              defaults={"memory_strategy": "none", "interpolate": None, "upscale": None},
              aliases={"memory_strategy": "--strategy"})  # fmt: skip
    plan.add_argument("--segments", type=int, default=None, help="with --model: a long video of this many segments "
                      "(1 to 32)")  # fmt: skip
    plan.add_argument("--json", action="store_true", help="print one JSON object")

    gen = commands.add_parser("generate", help="make a video from a photo")
    add_knobs(gen, GenerationRequest.knobs(), notes={"duration": DURATION_NOTE})
    gen.add_argument("--out", required=True, help="an .mp4 file, or a folder for a new unique name (end a new "
                     "folder's name with / when it has a dot in it)")  # fmt: skip
    gen.add_argument("--device", default=os.environ.get("I2V_DEVICE"),
                     help="cuda, cuda:1 or cpu (default: I2V_DEVICE, else cuda when available); with --gpus N: "
                     "the first N of I2V_DEVICES, else cuda:0 to cuda:N-1")  # fmt: skip
    gen.add_argument("--json", action="store_true", help="print the result as one JSON object")
    return parser


def add_knobs(parser: argparse.ArgumentParser, names: list[str], defaults: dict | None = None,
              aliases: dict | None = None, notes: dict | None = None) -> None:
    """A flag for each knob of GenerationRequest in `names`, derived from its field: the field's own
    name (--num-frames) and its short spelling (--frames), its type, choices, default and help (and
    `notes`, by knob, added to the help: what this command does with it)."""
    defaults, aliases, notes = defaults or {}, aliases or {}, notes or {}
    for name in names:
        field = GenerationRequest.model_fields[name]
        description = field.description + (f"; {notes[name]}" if name in notes else "")
        flags = [f"--{name.replace('_', '-')}"]
        short = (field.json_schema_extra or {}).get("flag")
        flags = [short, *flags] if short else flags
        flags += [aliases[name]] if name in aliases else []
        kind = field.annotation
        choices = None
        optional = get_origin(kind) in (Union, UnionType)
        if optional:  # int | None: the family's default when left out
            kind = next(a for a in get_args(kind) if a is not type(None))
        if get_origin(kind) is Literal:
            choices = list(get_args(kind))
            kind = _SPELLINGS.get(name, type(choices[0]))  # str, or int (--interpolate 2); argparse checks choices after
        default = defaults.get(name, None if field.is_required() else field.get_default(call_default_factory=True))
        if get_origin(kind) is list:  # repeatable: --lora A --lora B
            parse, metavar = _ITEM_PARSERS[name]
            parser.add_argument(*flags, dest=name, action="append", type=_bad_input_as_usage(parse), default=None,
                                metavar=metavar, help=description + " (repeatable)")  # fmt: skip
        elif kind is bool and optional:  # --compile / --no-compile; left out: from another knob
            parser.add_argument(*flags, dest=name, action=argparse.BooleanOptionalAction, default=None,
                                help=description)  # fmt: skip
        elif kind is bool:
            parser.add_argument(*flags, dest=name, action="store_true", default=bool(default), help=description)
        else:
            parser.add_argument(*flags, dest=name, type=kind, choices=choices, default=default,
                                required=field.is_required(), help=description)  # fmt: skip


def _lora(text: str):
    from .lora import parse

    return parse(text)


def _keyframe(text: str):
    """--keyframe PATH@FRAME."""
    from .request import Keyframe

    path, at, frame = text.rpartition("@")
    frame = frame.strip()
    if not at or not path or not (frame.isascii() and frame.isdecimal()) or int(frame) > 1023:
        raise InvalidInput("cli.keyframe_spec", value=text)
    return Keyframe(image=Path(path).expanduser(), frame=int(frame))


def _segment(text: str):
    from .request import Segment

    return Segment(prompt=text)


def _reference(text: str):
    """--reference PATH or PATH=LABEL (a photo or an MP4 clip, and who or what it is)."""
    from .request import Reference

    path, _, label = text.partition("=")
    if "=" in text and Path(text).expanduser().exists():  # a file whose name holds "=": the whole is the path
        path, label = text, ""
    if not path.strip():
        raise InvalidInput("cli.reference_spec", value=text)
    return Reference(source=Path(path.strip()).expanduser(), label=label.strip())


# Knobs whose other spellings the request accepts ("3D", "Watercolor"): read the same way before argparse
# checks the value against the choices.
_SPELLINGS = {"style": style_name}

# How one value of a repeatable flag is read, and how --help names it.
_ITEM_PARSERS = {"loras": (_lora, "SPEC"), "segments": (_segment, "PROMPT"), "keyframes": (_keyframe, "PATH@FRAME"),
                 "references": (_reference, "PATH[=LABEL]")}  # fmt: skip


def _bad_input_as_usage(parse):
    """An argparse type from a parser that raises InvalidInput: its words become argparse's error."""

    def convert(text: str):
        try:
            return parse(text)
        except InvalidInput as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__
    return convert


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("i2v-studio")
    except PackageNotFoundError:
        return "dev"


def main(argv: list[str] | None = None, storyboard: Storyboard | None = None) -> int:
    """The command. `storyboard` writes a long video's segment prompts for `generate --duration`
    (the engine knows no refiner: the `i2v` entry point, commands.py, passes one; without it every
    segment continues the same prompt)."""
    import os

    # Before torch is imported: fewer out-of-memory failures from fragmentation on long videos.
    os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    # Only commands that load a model quieten the libraries: importing diffusers costs seconds
    if not args.verbose and (args.command == "make-tiny" or (args.command == "generate" and args.model != "camera")):
        _quiet_libraries()
    try:
        commands = {"models": _models, "templates": _templates, "make-tiny": _make_tiny, "plan": _plan,
                    "generate": lambda args: _generate(args, storyboard)}  # fmt: skip
        return commands[args.command](args)
    except InvalidInput as exc:
        print(f"i2v: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Cancelled as exc:
        print(f"i2v: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except I2VError as exc:
        print(f"i2v: error: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _models(args) -> int:
    from .families import all_families, resolve, weights_present

    rows = []
    for family in all_families().values():
        rows.append(
            {
                "id": family.id,
                "label": family.label,
                "pipeline": family.pipeline,
                "hub_id": family.hub_id,
                "weights_present": weights_present(resolve(family.id)),
                "size_multiple": family.size_multiple,
                "frame_rule": family.frame_rule,
                "max_frames": family.max_frames,
                "defaults": {
                    "height": family.height,
                    "width": family.width,
                    "num_frames": family.num_frames,
                    "fps": family.fps,
                    "num_inference_steps": family.num_inference_steps,
                    "guidance_scale": family.guidance_scale,
                },
                "end_frame": family.end_frame,
                "text_prompt": family.text_prompt,
                "preview": family.preview,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'model':22} {'weights':8} {'pipeline':36} hub id")
    for row in rows:
        present = "yes" if row["weights_present"] else "no"
        print(f"{row['id']:22} {present:8} {row['pipeline'] or '(none: camera moves only)':36} {row['hub_id'] or ''}")
    return 0


def _templates(args) -> int:
    """The motion templates: name, labels, camera move, intensity, suggested seconds and guidance factor,
    and with --model the frames and guidance they suggest for that family (`templates.suggestion`, as
    the check step applies them to a request that sets neither)."""
    from .families import resolve
    from .templates import listing

    source = resolve(args.model) if args.model else None
    family = source.family if source else None
    rows = listing(source)
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    suggested = f"{'frames':>6} {'guidance':>8}" if family else f"{'seconds':>7} {'guidance':>8}"
    print(f"{'template':18} {'label':22} {'camera':12} {'intensity':>9} {suggested}")
    for row in rows:
        if family is not None:
            guidance = "-" if row["guidance_scale"] is None else f"{row['guidance_scale']:g}"
            values = f"{row['num_frames']:>6} {guidance:>8}"
        else:
            values = f"{row['seconds']:>7g} {'x' + format(row['guidance_factor'], 'g'):>8}"
        print(f"{row['name']:18} {row['label']:22} {row['camera_motion']:12} {row['motion_intensity']:>9g} {values}")
    if family is not None:
        guidance = f"guidance from its {family.guidance_scale:g}" if family.pipeline else "it takes no guidance"
        print(f"(frames at {family.id}'s {family.fps} fps, {family.frame_rule} rule; {guidance})")
    else:
        print("(guidance as a factor of the model's default; `--model ID` shows frames and guidance for one)")
    return 0


def _make_tiny(args) -> int:
    from .families import load_families
    from .tiny import make_tiny

    family = load_families().get(args.family)
    if family is None:
        raise InvalidInput("model.unknown", model=args.family, known=", ".join(load_families()))
    if args.directory.exists() and any(args.directory.iterdir()):
        raise InvalidInput("cli.directory_not_empty", directory=str(args.directory))
    make_tiny(family.id, args.directory)
    print(f"wrote a tiny random-weight {family.id} model to {args.directory}")
    return 0


def _generate(args, storyboard: Storyboard | None = None) -> int:
    from tqdm import tqdm

    try:
        values = {name: getattr(args, name) for name in GenerationRequest.knobs()}
        for name in _ITEM_PARSERS:
            values[name] = values[name] or []
        request = GenerationRequest(**values)
        if storyboard is not None and request.duration and not request.segments and request.prompt.strip():
            request = _with_storyboard(request, storyboard)
    except ValidationError as exc:
        raise InvalidInput("request.invalid", details=_one_line(exc)) from None

    out, out_file = _output(args.out)
    options = dict(output_dir=out if out_file is None else out.parent, runs_once=True,
                   lora_dir=os.environ.get("I2V_LORA_DIR") or None,
                   upscaler_dir=os.environ.get("I2V_UPSCALER_DIR") or None,
                   interpolator_dir=os.environ.get("I2V_INTERPOLATOR_DIR") or None)  # fmt: skip
    if request.gpus > 1:  # one video across several GPUs: a process each, started here (i2v/parallel.py)
        from .parallel import launch

        devices = _group_devices(request.gpus, args.device)

        def run(**kwargs):
            return launch(request, devices, engine_options=options, **kwargs)
    else:
        from .engine import VideoEngine

        engine = VideoEngine(device=args.device, **options)

        def run(**kwargs):
            return engine.generate(request, **kwargs)

    cancel = threading.Event()
    bars: dict[str, tqdm] = {}

    def on_progress(progress) -> None:
        if progress.stage in ("loading", "encoding"):
            return
        key = f"{progress.stage} {progress.segment}"
        bar = bars.get(key)
        if bar is None:
            unit = "step" if progress.stage == "denoising" else "frame"
            desc = progress.stage if progress.segments == 1 else f"segment {progress.segment}/{progress.segments}"
            bar = bars[key] = tqdm(total=progress.total, desc=desc, unit=unit, file=sys.stderr)
        bar.update(progress.step - bar.n)

    try:
        result = run(on_progress=on_progress, cancel=cancel, out_path=out_file)
    except KeyboardInterrupt:
        raise Cancelled("run.cancelled_ctrl_c") from None
    finally:
        for bar in bars.values():
            bar.close()
    if args.json:
        print(result.model_dump_json())
    else:
        kind = "camera-motion preview" if result.preview else "video"
        print(f"wrote {kind} {result.path}")
        print(
            f"  {result.label}: {result.width}x{result.height}, {result.num_frames} frames at {result.fps} fps, "
            f"seed {result.seed}, {result.seconds:.1f}s"
        )
        for number, segment in enumerate(result.segments, 1):
            print(f"  segment {number}: seed {segment.seed}: {segment.prompt}")
        for lora in result.loras:
            print(f"  LoRA {lora.name} x{lora.weight:g}" + (f" / x{lora.weight_2:g}" if lora.weight_2 is not None else ""))
        for lever in result.levers:
            state = "applied" if lever.applied else "not applied"
            print(f"  {lever.lever} {lever.value}: {state}" + (f" ({lever.reason})" if lever.reason else ""))
        for note in result.adjustments:
            print(f"  note: {note}")
    return 0


def _group_devices(gpus: int, device: str | None = None) -> list[str]:
    """The devices of a video across `gpus` GPUs: the first of I2V_DEVICES (cpu,cpu on a CPU box),
    else `--device cpu` repeated, else cuda:0 to cuda:N-1. Refused, before any process starts, when
    a GPU named (or needed) is not on this machine."""
    import torch

    from .hardware import absent, parse_devices

    text = os.environ.get("I2V_DEVICES")
    if not text:
        devices = ["cpu"] * gpus if device == "cpu" else [f"cuda:{index}" for index in range(gpus)]
    else:
        try:
            devices = [spec.device for spec in parse_devices(text)]
        except ValueError as exc:
            raise InvalidInput("parallel.bad_devices", detail=str(exc)) from None
        if len(devices) < gpus:
            raise InvalidInput("parallel.devices", gpus=gpus, count=len(devices), devices=", ".join(devices))
        devices = devices[:gpus]
    have = torch.cuda.device_count() if torch.cuda.is_available() else 0  # no CUDA context made here
    missing = absent(devices, have)
    if missing:
        raise InvalidInput("parallel.no_such_gpus", gpus=gpus, devices=", ".join(missing), count=have)
    return devices


def _with_storyboard(request: GenerationRequest, storyboard: Storyboard) -> GenerationRequest:
    """`request` (a duration and one prompt) with a storyboard's prompts as its segments, when the
    duration takes more than one segment of a model that reads prompts; else as it is. The
    storyboard goes to stderr, a line a segment."""
    from .checks import check, storyboard_shape

    checked = check(request)  # the count and each segment's length, as the engine will make them
    (count, seconds_each), family = storyboard_shape(checked), checked.family
    if count < 2:  # one segment, or a model that reads no prompt
        return request
    seconds_each = max(0.1, seconds_each)
    prompts = storyboard(request.prompt, count, seconds_each, family.id)
    print(f"storyboard: {count} segments of {seconds_each:.1f} s", file=sys.stderr)
    for number, prompt in enumerate(prompts, 1):
        print(f"  {number}. {prompt}", file=sys.stderr)
    # The segments are the prompts now (the first is the video's): the one prompt is left out
    return request.model_copy(update={"prompt": "", "segments": [Segment(prompt=prompt) for prompt in prompts]})


def _output(value: str) -> tuple[Path, Path | None]:
    """--out as (folder, exact file or None). A name that ends in another extension is refused:
    it used to become a folder named `x.mov` without a word."""
    out = Path(value).expanduser()
    if out.suffix.lower() == ".mp4":
        return out, out
    if out.suffix and not out.is_dir() and not value.endswith(("/", "\\")):
        raise InvalidInput("cli.out_not_mp4", value=value, suffix=out.suffix)
    return out, None


def _host_note(host_gb: float) -> str:
    return f" + {host_gb} GB host RAM" if host_gb else ""


def _plan(args) -> int:
    from dataclasses import asdict

    from .hardware import detect, host_ram_gb
    from .memory import (downgrade, faster_alternative, fastest_fit, in_words, levers_used, pick, speed_factor,
                         usable_gb)
    from .families import get_family

    # The long video's flags: checked first, whatever else is asked
    if args.segments is not None and not 1 <= args.segments <= 32:
        raise InvalidInput("cli.segments_range", value=args.segments)
    long_flags = [flag for flag, value in (("--segments", args.segments), ("--interpolate", args.interpolate),
                                           ("--upscale", args.upscale)) if value is not None]  # fmt: skip
    if long_flags and not args.model:
        raise InvalidInput("cli.long_needs_model", flags=" ".join(long_flags))
    segments = 1 if args.segments is None else args.segments
    interpolate, upscale = args.interpolate or 1, args.upscale or 1
    report: dict = {}
    gpu_name = None
    if args.detect:
        hardware = detect()
        gpu = hardware.gpu_for(args.device)
        report["hardware"] = {"gpus": [asdict(g) for g in hardware.gpus], "ram_gb": round(hardware.ram_gb, 1),
                              "device": args.device, "gpu": asdict(gpu) if gpu else None,
                              "summary": str(hardware.summary(args.device))}  # fmt: skip
        vram = gpu.free_gb if gpu else 0.0
        gpu_name = gpu.name if gpu else None
        ram = hardware.ram_gb or None
    else:
        if args.vram_gb <= 0:
            raise InvalidInput("cli.must_be_positive", flag="--vram-gb", value=args.vram_gb)
        if args.ram_gb is not None and args.ram_gb <= 0:
            raise InvalidInput("cli.must_be_positive", flag="--ram-gb", value=args.ram_gb)
        vram, ram, gpu_name = args.vram_gb, args.ram_gb, args.gpu
        if ram is None:  # offloaded weights need host RAM: plan for this machine's, and say so
            ram = host_ram_gb()
            report["ram_assumed"] = ram is not None
    report.update(vram_gb=round(vram, 2), usable_gb=round(usable_gb(vram), 2), ram_gb=ram, gpu=gpu_name,
                  speed_factor=speed_factor(gpu_name))  # fmt: skip

    def row(estimate) -> dict:
        s = estimate.shape
        return {"family": s.family, "height": s.height, "width": s.width, "num_frames": s.num_frames,
                "num_inference_steps": s.num_inference_steps, "strategy": s.memory_strategy, "vae_tiling": s.vae_tiling,
                **dict(zip(("quantize", "compile"), levers_used(s))), "guidance_scale": s.guidance_scale,
                "estimated_peak_gb": estimate.peak_gb, "estimated_seconds": estimate.seconds,
                "estimated_host_ram_gb": estimate.host_gb, "measured": estimate.measured}  # fmt: skip

    family = get_family(args.model) if args.model else None
    if family is not None and not family.pipeline:  # the camera engine: nothing on the GPU
        report.update(model=family.id, fits=True, needs_gpu=False)
        print(json.dumps(report) if args.json else f"{family.id}: {family.label} runs on the CPU and needs no GPU "
              "memory: nothing to plan")  # fmt: skip
        return 0
    if family is not None:
        steps, guidance, levers = _speed_settings(args, family)
        wanted = RunShape(family.id, args.height or family.height, args.width or family.width,
                          args.num_frames or family.num_frames, args.num_inference_steps or steps,
                          args.memory_strategy, args.vae_tiling, levers["quantize"], levers["compile"],
                          guidance)  # fmt: skip
        report["speed"] = args.speed
        strategy = "none" if args.memory_strategy == "auto" else args.memory_strategy
        wanted = wanted.with_(memory_strategy=strategy)
        auto = fastest_fit(wanted, vram, ram, gpu_name) if args.memory_strategy == "auto" else None
        if auto is not None:  # what the engine would do: the fastest strategy that fits
            now, ladder = auto, []
        else:
            now, ladder = downgrade(wanted, vram, ram, gpu_name)
        # A slow way to keep the video (sequential offload, say) comes with a faster smaller one.
        kept = auto if auto is not None else (ladder[-1].estimate if ladder else None)
        faster = faster_alternative(wanted, kept, vram, ram, gpu_name) if kept is not None else None
        if segments > 1 or interpolate > 1 or upscale > 1:
            from .memory import long_estimate

            kept_now = ladder[-1].estimate if ladder else now
            folder = os.environ.get("I2V_UPSCALER_DIR")
            if upscale > 1 and folder:
                from .upscale import find_upscaler

                report["upscaler_file"] = getattr(find_upscaler(Path(folder), upscale), "name", None)
            if interpolate > 1:  # RIFE where I2V_INTERPOLATOR_DIR holds its weights, as the engine chooses
                from .rife import find_rife

                folder = os.environ.get("I2V_INTERPOLATOR_DIR")
                report["interpolation"] = "rife" if folder and find_rife(Path(folder)) else "optical_flow"
            estimate = long_estimate(kept_now, segments, interpolate, upscale,
                                     upscaler_file=bool(report.get("upscaler_file")))  # fmt: skip
            report["long"] = {**asdict(estimate), "seconds": estimate.seconds}
        report.update(asked=row(now), fits=not ladder,
                      downgrade=[{"change": str(r.change), **row(r.estimate)} for r in ladder],
                      faster=({"change": str(faster.change), **row(faster.estimate)} if faster else None))  # fmt: skip
    else:
        if args.speed != "exact" or args.quantize or args.compile:
            raise InvalidInput("cli.speed_needs_model", speed=args.speed)
        chosen = pick(vram, gpu_name=gpu_name, ram_gb=ram)
        report["preset"] = row(chosen) if chosen else None
    if args.json:
        print(json.dumps(report))
        return 0
    if "hardware" in report:
        print(report["hardware"]["summary"])
    print(f"usable GPU memory: {report['usable_gb']} of {report['vram_gb']} GB")
    if ram:
        print(f"host RAM: {ram:.0f} GB" + (" (this machine's; --ram-gb N to plan for another)"
                                          if report.get("ram_assumed") else ""))  # fmt: skip
    else:
        print("host RAM: not known (--ram-gb N): offloaded weights are not checked against it")
    print(f"times for {gpu_name or 'an unknown GPU'}: {report['speed_factor']:g}x an H200's"
          + ("" if gpu_name else " (--gpu NAME to set)"))

    def describe(guess) -> str:
        s = guess.shape
        return (f"{s.family} {s.width}x{s.height}, {s.num_frames} frames, {s.num_inference_steps} steps, "
                f"{in_words(s.memory_strategy, s.vae_tiling)}: ~{guess.peak_gb} GB{_host_note(guess.host_gb)}, ~{guess.seconds / 60:.1f} min"
                f"{'' if guess.measured else ' (not measured)'}")  # fmt: skip

    if args.model:
        print(("fits: " if not ladder else "does not fit: ") + describe(now))
        for step in ladder:
            print(f"  then {step.change}: {describe(step.estimate)}")
        if faster is not None:
            print(f"  or, faster with a smaller video, {faster.change}: {describe(faster.estimate)}")
        if "long" in report:
            long = report["long"]
            extra = [f"{long['segments']} segment(s) ~{long['render_seconds'] / 60:.1f} min"]
            if long["interpolate_seconds"]:
                how = "RIFE" if report.get("interpolation") == "rife" else "optical flow, CPU"
                extra.append(f"interpolation x{long['fps_factor']} ({how}) ~{long['interpolate_seconds']:.0f} s")
            if long["upscale_seconds"]:
                how = f"{report['upscaler_file']} on the GPU" if report.get("upscaler_file") else "Lanczos"
                extra.append(f"upscaling ({how}) ~{long['upscale_seconds']:.0f} s")
            print(f"  the video: {long['num_frames']} frames of {long['width']}x{long['height']}; " + ", ".join(extra)
                  + f"; ~{long['seconds'] / 60:.1f} min in all; ~{long['host_gb']:.1f} GB of host memory for the frames")
    else:
        print("preset: " + (describe(chosen) if chosen else "none fits: use the camera engine"))
    return 0


def _speed_settings(args, family) -> tuple[int, float, dict]:
    """The steps, guidance and levers `--speed` (and the single levers) give a family's estimate."""
    from .speed import planned, turbo_for

    if args.speed == "turbo":
        turbo_for(family)  # a family without distilled weights is refused, as `generate` refuses it
    settings = planned(family, args.speed, args.quantize, args.compile)
    steps = settings.get("num_inference_steps", family.num_inference_steps)
    guidance = args.guidance_scale if args.guidance_scale is not None else settings.get("guidance_scale",
                                                                                         family.guidance_scale)  # fmt: skip
    return steps, guidance, settings


def _one_line(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        value = error.get("input")  # a list is counted, not printed: its items are objects
        shown = f"({len(value)} given)" if isinstance(value, (list, tuple)) else repr(value)
        parts.append(f"{where} {shown}: {error['msg']}")
    return "; ".join(parts)


def _quiet_libraries() -> None:
    import warnings

    warnings.filterwarnings("ignore")
    # torchao (imported by peft and diffusers when it is installed) reports kernels this machine lacks,
    # and torch's pytree notes deprecations on that import: neither is for the person at the command line.
    for name in ("diffusers", "transformers", "huggingface_hub", "torchao", "torch.utils._pytree"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging

        diffusers_logging.set_verbosity_error()
        diffusers_logging.disable_progress_bar()
        transformers_logging.set_verbosity_error()
        transformers_logging.disable_progress_bar()
    except ImportError:
        pass


if __name__ == "__main__":
    sys.exit(main())
