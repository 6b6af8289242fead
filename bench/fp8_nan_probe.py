"""Where fp8 (torchao, per-row) turns a Wan transformer's output into NaN: all linear layers, or
all but those that read the text and image context (padded with rows of zeros), with and without
zero rows in the context. A small Wan (256 wide) loaded through from_pretrained, as the engine does.

    python bench/fp8_nan_probe.py
"""

from __future__ import annotations

import json
import re

import torch
from diffusers import WanTransformer3DModel
from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow, quantize_

CONTEXT = re.compile(r"(attn2\.(to_k|to_v|add_k_proj|add_v_proj)|condition_embedder\.)")


def small(path: str = "/tmp/smallwan"):
    torch.manual_seed(0)
    WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=4, attention_head_dim=64, in_channels=48,
                          out_channels=48, text_dim=32, freq_dim=256, ffn_dim=512, num_layers=2, cross_attn_norm=True,
                          qk_norm="rms_norm_across_heads", rope_max_seq_len=32).save_pretrained(path)  # fmt: skip
    return path


def main() -> None:
    path = small()
    x = torch.randn(1, 48, 3, 16, 16, dtype=torch.bfloat16, device="cuda")
    text = torch.randn(1, 64, 32, dtype=torch.bfloat16, device="cuda")
    padded = text.clone()
    padded[:, 16:] = 0  # the pipeline pads prompts to 512 tokens with zeros
    step = torch.tensor([500], device="cuda")
    for which in ("all", "not-context", "blocks-only-not-context", "blocks-floor"):
        for context_name, context in (("random", text), ("zero-padded", padded)):
            model = WanTransformer3DModel.from_pretrained(path, torch_dtype=torch.bfloat16).to("cuda")
            with torch.no_grad():
                ref = model(x, step, context, return_dict=False)[0]

            def keep(module, name):
                if not (isinstance(module, torch.nn.Linear) and module.weight.dtype == torch.bfloat16):
                    return False
                if which != "all" and CONTEXT.search(name):
                    return False
                return which != "blocks-only-not-context" or name.startswith("blocks.")

            if which == "blocks-floor":  # what the engine does (i2v.speed.to_fp8)
                from i2v.speed import to_fp8

                to_fp8(type("Pipe", (), {"transformer": model})(), "cuda")
            else:
                quantize_(model, Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()), filter_fn=keep)
            with torch.no_grad():
                out = model(x, step, context, return_dict=False)[0]
            print(json.dumps(dict(quantized=which, context=context_name, nan=bool(out.isnan().any()),
                                  max_abs_diff=float((out.float() - ref.float()).abs().nan_to_num(9e9).max()),
                                  ref_max=float(ref.float().abs().max()))), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
