"""Attention kernels at the sizes the video models use: milliseconds per call and the error against a
float32 reference, on random inputs (random q and k give flat attention, gentler than real weights:
the error here is a floor, not the real one).

    python bench/attention_kernels.py OUT

Kernels: torch's SDPA as diffusers calls it (its own choice), its flash, cuDNN and memory-efficient
backends, and SageAttention 1.0.6 (PyPI's; int8 Q and K, fp16 P and V) where installed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

SHAPES = {  # name: (heads, query tokens, key tokens, head dim)
    "wan14b-480p-self": (40, 32760, 32760, 128),
    "wan14b-480p-cross": (40, 32760, 512, 128),
    "wan5b-704p-self": (24, 27280, 27280, 128),
    "ltx-480p-self": (32, 6720, 6720, 64),
    "i2vgenxl-512-spatial": (10, 4096, 4096, 64),  # 16 frames x batch 2 as batch 32
}
BACKENDS = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
            "efficient": SDPBackend.EFFICIENT_ATTENTION}


def timed(fn, repeats=10) -> float:
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        from sageattention.core import sageattn
    except ImportError:
        sageattn = None
    for name, (heads, q_len, k_len, dim) in SHAPES.items():
        batch = 32 if name.startswith("i2vgenxl") else 1
        g = torch.Generator("cuda").manual_seed(0)
        q, k, v = (torch.randn(batch, heads, n, dim, generator=g, device="cuda", dtype=torch.bfloat16)
                   for n in (q_len, k_len, k_len))
        with sdpa_kernel(SDPBackend.EFFICIENT_ATTENTION):
            reference = F.scaled_dot_product_attention(q.float(), k.float(), v.float())
        kernels = {"sdpa-default": lambda: F.scaled_dot_product_attention(q, k, v)}
        for backend, which in BACKENDS.items():
            kernels[backend] = lambda which=which: _with(which, q, k, v)
        if sageattn is not None:
            kernels["sage1"] = lambda: sageattn(q, k.clone(), v, tensor_layout="HND")
        for kernel, fn in kernels.items():
            row = dict(shape=name, batch=batch, heads=heads, q_tokens=q_len, k_tokens=k_len, head_dim=dim, kernel=kernel)
            try:
                out = fn().float()
                row.update(ms=round(timed(fn), 3),
                           rel_l1=round(float((out - reference).abs().mean() / reference.abs().mean()), 5),
                           cosine=round(float(F.cosine_similarity(out.flatten(), reference.flatten(), dim=0)), 6))
            except Exception as exc:  # a backend that refuses this shape or dtype
                row.update(error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
            row.update(device=torch.cuda.get_device_name(), torch=torch.__version__)
            print(json.dumps(row), flush=True)
            with (args.out / "attention_kernels.jsonl").open("a") as handle:
                handle.write(json.dumps(row) + "\n")
        del q, k, v, reference
        torch.cuda.empty_cache()


def _with(backend, q, k, v):
    with sdpa_kernel(backend):
        return F.scaled_dot_product_attention(q, k, v)


if __name__ == "__main__":
    main()
