"""Where a pipeline's weights live while it runs: the memory strategies (all on the GPU, model,
group or sequential CPU offload), VAE tiling, and giving memory back.

The engine places every pipeline through `place`; benchmarks import it to measure exactly what the
engine does. This module knows nothing about requests, families or the planner.
"""

from __future__ import annotations

import gc
import logging

from .errors import InvalidInput

log = logging.getLogger(__name__)


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


def free_memory(host: bool = False) -> None:
    """Give back the GPU memory torch caches; with `host`, the pinned host memory too.

    Group offload with streams keeps a pinned copy of every offloaded weight (for Wan 2.2 A14B,
    64 GB). Freed tensors go back to torch's caching host allocator, which keeps the pages pinned
    for reuse: after switching models a 128 GB machine still held 98 GB and the next model was
    killed by the OOM killer. So unloading a model also empties that cache."""
    import torch

    gc.collect()
    if torch.cuda.is_initialized():  # never start CUDA (on GPU 0) for an engine that runs on the CPU
        torch.cuda.synchronize()  # a pinned block stays busy until the copies that read it are done
        torch.cuda.empty_cache()
        if host:
            empty_host_cache = getattr(getattr(torch, "accelerator", None), "empty_host_cache", None)
            if empty_host_cache is None:  # torch before 2.10
                empty_host_cache = getattr(torch._C, "_host_emptyCache", lambda: None)
            empty_host_cache()
    if host:
        _trim_malloc()


def _trim_malloc() -> None:
    """Hand freed heap memory back to the system (glibc keeps freed blocks under 32 MB for reuse:
    after a model offload run, 7 GB stayed resident)."""
    import ctypes
    import sys

    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # not glibc (musl): nothing to trim
            pass


def prepare_cuda() -> bool:
    """Make the CUDA allocator use expandable segments, however the engine was started.

    The planner's estimates were measured with `expandable_segments:True`; without it, fragmentation
    made the 12 GB tier's pick (estimated 10.19 GB) run out of memory under a 12 GB cap, while with it
    the run peaked at 10.18 GB. start_app.sh and the `i2v` command set PYTORCH_CUDA_ALLOC_CONF before
    torch starts; a VideoEngine made from Python sets it here, through torch's allocator settings,
    which apply to every segment allocated after the call. Returns True when it was set."""
    import torch

    setter = getattr(torch._C, "_accelerator_setAllocatorSettings", None) or getattr(
        torch._C, "_cuda_cudaCachingAllocator_set_allocator_settings", None
    )
    if not torch.cuda.is_available():
        return False
    if setter is None:
        log.warning("this torch cannot set expandable segments at run time: set "
                    "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True before starting, or plans may not hold")
        return False
    setter("expandable_segments:True")
    log.info("CUDA allocator: expandable segments on (the planner's estimates were measured with them)")
    return True
