"""Where a pipeline's weights live while it runs: the memory strategies (all on the GPU, model,
group or sequential CPU offload), VAE tiling, and giving memory back.

The engine places every pipeline through `place`; benchmarks import it to measure exactly what the
engine does. This module knows nothing about requests, families or the planner.
"""

from __future__ import annotations

import gc

from .errors import InvalidInput


def place(pipe, strategy: str, device: str) -> None:
    """Put the pipeline's weights where `strategy` says. On the CPU everything simply stays there."""
    if not device.startswith("cuda") or strategy == "none":
        pipe.to(device)
    elif strategy == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif strategy == "sequential":
        sequential_offload(pipe, device)
    elif strategy == "group":
        # Block-level group offload with CUDA streams for the denoiser (measured: 4-17% slower than
        # all on the GPU); text encoders keep their blocks below the top level, so leaf level there.
        import torch
        from diffusers.hooks import apply_group_offloading

        for name, component in pipe.components.items():
            if not isinstance(component, torch.nn.Module):
                continue
            if name in ("transformer", "transformer_2", "unet", "text_encoder", "text_encoder_2"):
                level = "leaf_level" if name.startswith("text_encoder") else "block_level"
                apply_group_offloading(component, onload_device=torch.device(device), offload_type=level,
                                       num_blocks_per_group=1 if level == "block_level" else None,
                                       use_stream=True)  # fmt: skip
            else:
                component.to(device)
    else:
        raise InvalidInput("memory.unknown_strategy", strategy=strategy)


def sequential_offload(pipe, device: str) -> None:
    """diffusers' sequential CPU offload, but components holding an `nn.MultiheadAttention` go to
    `device` whole. accelerate moves a module's weights in when that module is called, and
    MultiheadAttention reads its `out_proj` weights without calling it, so they stayed on the meta
    device and the run failed (SigLIP's pooling head in HunyuanVideo 1.5's image encoder, 0.8 GB)."""
    import torch

    whole = [name for name, component in pipe.components.items() if isinstance(component, torch.nn.Module)
             and any(isinstance(m, torch.nn.MultiheadAttention) for m in component.modules())]  # fmt: skip
    own = "_exclude_from_cpu_offload" in vars(pipe)
    kept = pipe._exclude_from_cpu_offload
    pipe._exclude_from_cpu_offload = [*kept, *whole]  # for this call only: a later model offload still moves them
    try:
        pipe.enable_sequential_cpu_offload(device=device)
    finally:
        if own:
            pipe._exclude_from_cpu_offload = kept
        else:
            del pipe._exclude_from_cpu_offload


def set_vae_tiling(pipe, on: bool) -> None:
    vae = getattr(pipe, "vae", None)
    method = getattr(vae, "enable_tiling" if on else "disable_tiling", None)
    if method is not None:
        method()


def free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
