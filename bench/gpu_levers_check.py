"""On a GPU: the speed levers together with LoRAs, through the engine, on a small Wan model whose
layer sizes suit fp8 (multiples of 16; the test suite's tiny models have 4- and 12-wide layers).

Checks, printing one JSON line each: fp8 weights with a LoRA on top (the adapter changes the frames,
weight 0 gives the LoRA-less frames back, the result says fp8 was applied); compiled blocks with a
LoRA switched in and out (frames as without compile, within bf16 noise); turbo fusing a LoRA into
fp8-quantized weights' base before quantizing. No timing: that is bench/speed.py.

    python bench/gpu_levers_check.py OUT
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import i2v.engine  # noqa: E402
from i2v.engine import VideoEngine  # noqa: E402
from i2v.families import get_family  # noqa: E402
from i2v.request import GenerationRequest, LoraChoice  # noqa: E402

FAMILY = "wan2.2-ti2v-5b"


def small_wan(folder: Path) -> Path:
    """Wan 2.2 TI2V 5B's tiny pipeline with a wider transformer (256 wide, fp8-friendly)."""
    from diffusers import WanTransformer3DModel

    family = get_family(FAMILY)
    components = family.tiny_components()
    torch.manual_seed(0)
    components["transformer"] = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=4, attention_head_dim=64, in_channels=48, out_channels=48,
        text_dim=32, freq_dim=256, ffn_dim=512, num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    )  # fmt: skip
    pipe = family.pipeline_class()(**components)
    pipe.save_pretrained(folder)
    return folder


def lora_for(transformer, path: Path, seed: int, rank: int = 16) -> Path:
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, module in transformer.named_modules():
        if isinstance(module, torch.nn.Linear) and name.startswith("blocks.") and ".attn1." in name:
            tensors[f"transformer.{name}.lora_A.weight"] = torch.randn(rank, module.in_features, generator=generator) * 0.3
            tensors[f"transformer.{name}.lora_B.weight"] = torch.randn(module.out_features, rank, generator=generator) * 0.3
    save_file(tensors, str(path))
    return path


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    i2v.engine.write_mp4 = lambda frames, path, fps, metadata: None  # no ffmpeg on the GPU machine
    folder = small_wan(out / "small-wan")
    from diffusers import WanTransformer3DModel

    transformer = WanTransformer3DModel.from_pretrained(folder / "transformer")
    style = lora_for(transformer, out / "style.safetensors", seed=1)
    photo = out / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(photo)
    engine = VideoEngine(out / "videos", device="cuda", cache_dir=out / "cc")
    frames: dict[str, np.ndarray] = {}
    renders = []

    def run(name: str, **knobs) -> None:
        from i2v.checks import check

        request = GenerationRequest(image=photo, model=str(folder), height=64, width=64, num_frames=9,
                                    num_inference_steps=3, seed=2, memory_strategy="none", **knobs)  # fmt: skip
        started = time.perf_counter()
        checked = engine.choose_levers(engine.choose_strategy(check(request)))
        frames[name] = np.asarray(engine.render(checked), dtype=np.float32)
        renders.append(dict(run=name, seconds=round(time.perf_counter() - started, 2),
                            nan_fraction=round(float(np.isnan(frames[name]).mean()), 4),
                            levers=[(lv.lever, lv.applied, str(lv.reason) if lv.reason else None) for lv in checked.levers]))  # fmt: skip
        print(json.dumps(renders[-1]), flush=True)

    def diff(a: str, b: str) -> float:
        return float(np.abs(frames[a] - frames[b]).max())

    checks = {}
    try:
        run("fp8", quantize="fp8")
        run("fp8+lora", quantize="fp8", loras=[LoraChoice(source=str(style))])
        run("fp8+lora@0", quantize="fp8", loras=[LoraChoice(source=str(style), weight=0.0)])
        checks["fp8: the LoRA changes the frames"] = diff("fp8+lora", "fp8") > 0.01
        checks["fp8: weight 0 gives the frames back"] = diff("fp8+lora@0", "fp8") < 1e-6
        run("bf16")
        checks["fp8 differs from bf16 only a little"] = diff("fp8", "bf16")
        run("compiled", compile=True)
        run("compiled+lora", compile=True, loras=[LoraChoice(source=str(style))])
        run("compiled again", compile=True)
        run("bf16+lora", loras=[LoraChoice(source=str(style))])
        checks["compiled vs eager (max abs)"] = diff("compiled", "bf16")
        checks["compiled+lora vs eager+lora (max abs)"] = diff("compiled+lora", "bf16+lora")
        checks["compiled after dropping the LoRA (max abs vs compiled)"] = diff("compiled again", "compiled")
        run("fast", speed="fast", step_cache="none")
        run("fast+lora", speed="fast", step_cache="none", loras=[LoraChoice(source=str(style))])
        checks["fast: the LoRA changes the frames"] = diff("fast+lora", "fast") > 0.01
    except Exception as exc:  # report, do not hide: the device run's output is the record
        import traceback

        traceback.print_exc()
        checks["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
    print(json.dumps({"checks": checks, "device": torch.cuda.get_device_name(), "torch": torch.__version__}), flush=True)
    (out / "levers_check.json").write_text(json.dumps({"runs": renders, "checks": checks}, indent=1))


if __name__ == "__main__":
    main()
