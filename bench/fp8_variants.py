"""Which part of fp8 costs Wan 14B's speed: seconds per forward of a Wan 2.1 I2V 14B transformer cut
to a few blocks (real width, real 480x832x81 inputs, random weights), compiled the way the engine
compiles it (`compile_repeated_blocks(fullgraph=True)`), with fp8 made in several ways.

    python bench/fp8_variants.py OUT [--layers 4] [--variants bf16,shipped,...]

Variants: bf16 (no fp8); shipped (i2v.speed.to_fp8: the blocks' layers, floored per-row scales,
made on the GPU by quantize_(device=)); first (every bf16 linear layer, no floor: the version that
gave NaN videos); first-randctx (the same with a prompt without zero rows, so no NaN); all-floor;
blocks-nofloor. Each row also says whether the output held NaN.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from i2v import speed  # noqa: E402

VARIANTS = {  # name: (layers, floor, zero-padded prompt)
    "bf16": (None, False, True),
    "shipped": ("blocks", True, True),
    "first": ("all", False, True),
    "first-randctx": ("all", False, False),
    "all-floor": ("all", True, True),
    "blocks-nofloor": ("blocks", False, True),
    "blocks-nofloor-randctx": ("blocks", False, False),
}


def transformer(layers: int, device: str):
    """Wan 2.1 I2V 14B's transformer as bench/measure_memory.py builds it, `layers` blocks deep."""
    from measure_memory import wan_transformer

    torch.manual_seed(0)
    with torch.device(device):
        model = wan_transformer(num_attention_heads=40, num_layers=layers, ffn_dim=13824, in_channels=36,
                                out_channels=16, image_dim=1280, added_kv_proj_dim=5120).to(torch.bfloat16)  # fmt: skip
    return model.eval().requires_grad_(False)


def inputs(device: str, zero_padded: bool, tiny: bool):
    g = torch.Generator(device).manual_seed(1)
    frames, height, width, tokens = (3, 8, 8, 16) if tiny else (21, 60, 104, 512)
    context = torch.randn(1, tokens, 4096, generator=g, device=device, dtype=torch.bfloat16)
    if zero_padded:  # as the pipeline pads a short prompt's embeddings
        context[:, 12:] = 0
    return dict(
        hidden_states=torch.randn(1, 36, frames, height, width, generator=g, device=device, dtype=torch.bfloat16),
        timestep=torch.tensor([500.0], device=device),
        encoder_hidden_states=context,
        encoder_hidden_states_image=torch.randn(1, 257, 1280, generator=g, device=device, dtype=torch.bfloat16),
        return_dict=False,
    )  # fmt: skip


def make_fp8(model, layers: str, floor: bool, device: str) -> None:
    from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow, quantize_

    if layers == "blocks" and floor:  # the product's own function, unchanged
        speed.to_fp8(type("Pipe", (), {"transformer": model})(), device)
        return
    config = Float8DynamicActivationFloat8WeightConfig(
        granularity=PerRow(), activation_value_lb=speed.FP8_SCALE_FLOOR if floor else None)
    if layers == "blocks":
        fn = speed._fp8_layer
    else:
        def fn(module, name):
            return isinstance(module, torch.nn.Linear) and module.weight.dtype == torch.bfloat16
    quantize_(model, config, filter_fn=fn)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--cpu-check", action="store_true", help="tiny inputs on a CPU, no fp8 or compile")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    device = "cpu" if args.cpu_check else "cuda"
    for name in args.variants.split(","):
        layers, floor, zero_padded = VARIANTS[name]
        model = transformer(args.layers, device)
        if layers and not args.cpu_check:
            make_fp8(model, layers, floor, device)
        if not args.cpu_check:
            model.compile_repeated_blocks(fullgraph=True)
        kwargs = inputs(device, zero_padded, args.cpu_check)
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        with torch.no_grad():
            started = time.perf_counter()
            model(**kwargs)
            sync()
            warm_up = time.perf_counter() - started
            model(**kwargs)
            sync()
            times = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                out = model(**kwargs)[0]
                sync()
                times.append(time.perf_counter() - started)
        times.sort()
        row = dict(variant=name, layers=args.layers, fp8_layers=layers, floor=floor, zero_padded_prompt=zero_padded,
                   seconds_per_forward=round(times[len(times) // 2], 4), fastest=round(times[0], 4),
                   warm_up_seconds=round(warm_up, 1), output_nan=bool(out.isnan().any()),
                   device=torch.cuda.get_device_name() if device == "cuda" else "cpu", torch=torch.__version__)  # fmt: skip
        print(json.dumps(row), flush=True)
        with (args.out / "fp8_variants.jsonl").open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        del model, out, kwargs
        torch._dynamo.reset()
        if device == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
