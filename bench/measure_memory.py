"""Peak GPU memory and speed of real-size pipelines with random weights, per phase and strategy.

Speed and memory do not depend on weight values, so each family is built at its published size
(configs below, from diffusers' conversion scripts and the models' config.json files) with random
bf16 weights directly on the GPU; no download. Each run makes a video of the given size with
`--steps` denoising steps and records, separately:
  encode  peak while encoding the prompt and photo (up to the denoiser's first call)
  denoise peak over the denoising steps, and seconds per step
  decode  peak while the VAE decodes, and its seconds
for strategies: none (all on GPU), model (model CPU offload), group (block-level group offload
with CUDA streams), sequential (diffusers' sequential CPU offload), with VAE tiling at the largest size. Results: one JSON line per run.

    python bench/measure_memory.py OUT_DIR --family wan2.2-ti2v-5b [--family ltx-video ...]
"""

from __future__ import annotations

import argparse
import gc
import inspect
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

GiB = 2**30


# ---------------------------------------------------------------------- full-size components
def _t5_tokenizer():
    from i2v.tiny import _t5_tokenizer

    return _t5_tokenizer()  # any tokenizer will do: pipelines pad prompts to their fixed length


def umt5_xxl():
    from transformers import UMT5Config, UMT5EncoderModel

    return UMT5EncoderModel(UMT5Config(
        vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
        relative_attention_num_buckets=32, relative_attention_max_distance=128, feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
    ))  # fmt: skip


def t5_xxl():
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(
        vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
        relative_attention_num_buckets=32, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
    ))  # fmt: skip


def clip_vit_h():
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    config = CLIPVisionConfig(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16,
                              image_size=224, patch_size=14, projection_dim=1024, hidden_act="gelu")  # fmt: skip
    return CLIPVisionModel(config), CLIPImageProcessor(crop_size=224, size=224)


def wan_transformer(**overrides):
    from diffusers import WanTransformer3DModel

    config = dict(
        patch_size=(1, 2, 2), attention_head_dim=128, cross_attn_norm=True, eps=1e-6, freq_dim=256,
        qk_norm="rms_norm_across_heads", text_dim=4096, rope_max_seq_len=1024,
    )  # fmt: skip
    return WanTransformer3DModel(**{**config, **overrides})


def wan21_i2v_14b():
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler

    image_encoder, image_processor = clip_vit_h()
    return dict(
        transformer=wan_transformer(num_attention_heads=40, num_layers=40, ffn_dim=13824, in_channels=36,
                                    out_channels=16, image_dim=1280, added_kv_proj_dim=5120),  # fmt: skip
        transformer_2=None, vae=AutoencoderKLWan(), text_encoder=umt5_xxl(), tokenizer=_t5_tokenizer(),
        image_encoder=image_encoder, image_processor=image_processor, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
    )  # fmt: skip


def wan22_ti2v_5b():
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler

    vae = AutoencoderKLWan(
        base_dim=160, decoder_base_dim=256, z_dim=48, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
        temperal_downsample=[False, True, True], is_residual=True, in_channels=12, out_channels=12, patch_size=2,
        scale_factor_spatial=16, scale_factor_temporal=4, latents_mean=[0.0] * 48, latents_std=[1.0] * 48,
    )  # fmt: skip
    return dict(
        transformer=wan_transformer(num_attention_heads=24, num_layers=30, ffn_dim=14336, in_channels=48,
                                    out_channels=48),  # fmt: skip
        transformer_2=None, vae=vae, text_encoder=umt5_xxl(), tokenizer=_t5_tokenizer(), image_encoder=None,
        image_processor=None, expand_timesteps=True,
        scheduler=UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0),
    )  # fmt: skip


def ltx_video():
    from diffusers import AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXVideoTransformer3DModel

    return dict(transformer=LTXVideoTransformer3DModel(), vae=AutoencoderKLLTXVideo(), text_encoder=t5_xxl(),
                tokenizer=_t5_tokenizer(), scheduler=FlowMatchEulerDiscreteScheduler())  # fmt: skip


BUILDERS = {"wan2.1-i2v-14b-480p": wan21_i2v_14b, "wan2.2-ti2v-5b": wan22_ti2v_5b, "ltx-video": ltx_video}

# (height, width, num_frames) to measure, per family: the published sizes and smaller ones to fit lines.
SIZES = {
    "wan2.1-i2v-14b-480p": [(480, 832, 33), (480, 832, 81), (720, 1280, 33)],
    "wan2.2-ti2v-5b": [(480, 832, 49), (704, 1280, 49), (704, 1280, 121)],
    "ltx-video": [(480, 704, 81), (480, 704, 161), (704, 1216, 121)],
}


def build(family_id: str):
    from i2v.models import get_family

    family = get_family(family_id)
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("cuda"):
            components = BUILDERS[family_id]()
    finally:
        torch.set_default_dtype(torch.float32)
    pipe = family.pipeline_class()(**components)
    pipe.set_progress_bar_config(disable=True)
    return family, pipe


def weights_gb(pipe) -> dict[str, float]:
    sizes = {}
    for name, component in pipe.components.items():
        if isinstance(component, torch.nn.Module):
            sizes[name] = sum(p.numel() * p.element_size() for p in component.parameters()) / GiB
    return sizes


# ---------------------------------------------------------------------- one run
def measure(pipe, family, height, width, num_frames, steps, strategy, tiling) -> dict:
    marks: dict[str, float] = {}
    denoiser = pipe.transformer

    def first_call(module, args, kwargs):
        if "denoise_start" not in marks:
            torch.cuda.synchronize()
            marks["encode_peak"] = torch.cuda.max_memory_allocated() / GiB
            torch.cuda.reset_peak_memory_stats()
            marks["denoise_start"] = time.perf_counter()

    def step_end(pipeline, index, timestep, callback_kwargs):
        # Time from the end of step 1: the first step also pays for moving weights (offload).
        torch.cuda.synchronize()
        marks[f"step_{index}"] = time.perf_counter()
        return {}

    handle = denoiser.register_forward_pre_hook(first_call, with_kwargs=True)
    decode = pipe.vae.decode

    def timed_decode(*args, **kwargs):
        torch.cuda.synchronize()
        marks["denoise_peak"] = torch.cuda.max_memory_allocated() / GiB
        marks["decode_start"] = time.perf_counter()
        torch.cuda.reset_peak_memory_stats()
        out = decode(*args, **kwargs)
        torch.cuda.synchronize()
        marks["decode_peak"] = torch.cuda.max_memory_allocated() / GiB
        marks["decode_end"] = time.perf_counter()
        return out

    pipe.vae.decode = timed_decode
    if tiling:
        pipe.vae.enable_tiling()
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8))
    kwargs = dict(image=photo, prompt="a cat turns its head", negative_prompt="blurry", height=height, width=width,
                  num_frames=num_frames, num_inference_steps=steps, output_type="np",
                  generator=torch.Generator("cpu").manual_seed(0), callback_on_step_end=step_end)  # fmt: skip
    if "frame_rate" in inspect.signature(pipe.__call__).parameters:
        kwargs["frame_rate"] = family.fps
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    baseline = torch.cuda.memory_allocated() / GiB
    started = time.perf_counter()
    row = dict(family=family.id, height=height, width=width, num_frames=num_frames, steps=steps, strategy=strategy,
               tiling=tiling, baseline_gb=round(baseline, 3))  # fmt: skip
    try:
        pipe(**kwargs)
        torch.cuda.synchronize()
        row.update(
            ok=True,
            encode_peak_gb=round(marks["encode_peak"], 3),
            denoise_peak_gb=round(marks["denoise_peak"], 3),
            decode_peak_gb=round(marks["decode_peak"], 3),
            peak_gb=round(max(marks["encode_peak"], marks["denoise_peak"], marks["decode_peak"]), 3),
            seconds_per_step=round((marks[f"step_{steps - 1}"] - marks["step_0"]) / (steps - 1), 3),
            first_step_seconds=round(marks["step_0"] - marks["denoise_start"], 3),
            decode_seconds=round(marks["decode_end"] - marks["decode_start"], 3),
            encode_seconds=round(marks["denoise_start"] - started, 3),
        )
    except torch.OutOfMemoryError as exc:
        row.update(ok=False, error=str(exc).splitlines()[0][:200])
    finally:
        handle.remove()
        del pipe.vae.decode
        if tiling:
            pipe.vae.disable_tiling()
    return row


def apply_strategy(pipe, strategy: str) -> None:
    """Place the pipeline exactly as the engine does (i2v.engine._place), after undoing the last placement."""
    from i2v.engine import _place

    pipe.remove_all_hooks()
    if strategy != "none":
        pipe.to("cpu")
    _place(pipe, strategy, "cuda")
    gc.collect()
    torch.cuda.empty_cache()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--family", action="append", required=True, choices=sorted(BUILDERS))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--strategies", default="none,model,group")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "memory_runs.jsonl"
    torch.backends.cuda.matmul.allow_tf32 = True
    for family_id in args.family:
        started = time.perf_counter()
        family, pipe = build(family_id)
        header = dict(family=family_id, kind="weights", weights_gb={k: round(v, 3) for k, v in weights_gb(pipe).items()},
                      build_seconds=round(time.perf_counter() - started, 1), device=torch.cuda.get_device_name(),
                      torch=torch.__version__)  # fmt: skip
        print(json.dumps(header), flush=True)
        with results.open("a") as out:
            out.write(json.dumps(header) + "\n")
        for strategy in args.strategies.split(","):
            apply_strategy(pipe, strategy)
            for height, width, frames in SIZES[family_id]:
                for tiling in (False, True) if (height, width, frames) == SIZES[family_id][-1] else (False,):
                    row = measure(pipe, family, height, width, frames, args.steps, strategy, tiling)
                    print(json.dumps(row), flush=True)
                    with results.open("a") as out:
                        out.write(json.dumps(row) + "\n")
        pipe.remove_all_hooks()
        del pipe
        gc.collect()
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
