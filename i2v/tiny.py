"""Tiny random-weight models of every family, for tests and demos.

Each family's room builds its own components (`Family.tiny_components`), following the shapes of
diffusers' own `get_dummy_components` (seed 0 before every component) so that a whole pipeline runs
on a CPU in well under a second per step; the pieces several rooms share (T5 and CLIP tokenizers
and encoders) are here. `make_tiny` writes the pipeline with `save_pretrained`; the engine loads it
back through the very same `from_pretrained` path that real weights take, so tests exercise the
product's loading code.

Tokenizers are built in memory: nothing here touches the Hugging Face hub.
This module knows nothing about requests, exports or the camera engine.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

from .families import FAMILY_MARKER, Family, get_family


def t5_tokenizer():
    from transformers import T5Tokenizer

    pieces = ["<pad>", "</s>", "<unk>", "▁"]
    pieces += ["▁" + c for c in string.ascii_lowercase]
    pieces += list(string.ascii_letters + string.digits + string.punctuation)
    vocab = [(p, 0.0 if i < 3 else -float(i)) for i, p in enumerate(pieces)]
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def t5_encoder(vocab_size: int, d_model: int = 32, umt5: bool = False):
    from transformers import T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel

    config_class, model_class = (UMT5Config, UMT5EncoderModel) if umt5 else (T5Config, T5EncoderModel)
    config = config_class(
        vocab_size=vocab_size,
        d_model=d_model,
        d_kv=8,
        d_ff=37,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        decoder_start_token_id=0,
    )
    return model_class(config)


def clip_tokenizer():
    from transformers import CLIPTokenizer

    specials = ["<|startoftext|>", "<|endoftext|>"]
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    tokens = specials + chars + [c + "</w>" for c in chars]
    return CLIPTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=[], model_max_length=77)


def clip_vision(hidden: int, image_size: int = 32, patch_size: int = 1, projection: bool = True):
    import torch
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    config = CLIPVisionConfig(
        hidden_size=hidden,
        projection_dim=hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=image_size,
        intermediate_size=16,
        patch_size=patch_size,
    )
    processor = CLIPImageProcessor(crop_size=image_size, size=image_size)
    model_class = CLIPVisionModelWithProjection if projection else CLIPVisionModel
    return model_class(config), processor


def t5_text(umt5: bool = False):
    """A tiny T5 (or UMT5) tokenizer and encoder."""
    import torch

    tokenizer = t5_tokenizer()
    torch.manual_seed(0)
    return tokenizer, t5_encoder(len(tokenizer), umt5=umt5)


def build_tiny(family: Family):
    """The family's pipeline with tiny random weights (its room's `tiny_components`), in float32, on the CPU."""
    return family.pipeline_class()(**family.tiny_components())


def make_tiny(family_id: str, directory: str | Path) -> Path:
    """Write a tiny random-weight model of `family_id` to `directory`, loadable by the engine."""
    family = get_family(family_id)
    directory = Path(directory)
    pipe = build_tiny(family)
    pipe.save_pretrained(directory)
    # The folder names its family, so the engine need not guess it from the architecture.
    index_path = directory / "model_index.json"
    index = json.loads(index_path.read_text())
    index[FAMILY_MARKER] = family.id
    index_path.write_text(json.dumps(index, indent=2) + "\n")
    return directory


def make_tiny_latent_upsampler(family_id: str, directory: str | Path) -> Path:
    """Write a tiny random-weight LTXLatentUpsamplerModel for `family_id`'s tiny VAE (its latent
    channels in, one block a stage) to `directory` with `save_pretrained`: a folder the engine finds
    in its upscaler folder, as it would the real one."""
    import torch
    from diffusers.pipelines.ltx.modeling_latent_upsampler import LTXLatentUpsamplerModel

    latent_channels = get_family(family_id).tiny_components()["vae"].config.latent_channels
    torch.manual_seed(0)
    upsampler = LTXLatentUpsamplerModel(in_channels=latent_channels, mid_channels=32, num_blocks_per_stage=1)
    upsampler.save_pretrained(directory)  # mid_channels 32: the smallest its GroupNorm(32, ...) takes
    return Path(directory)


_ATTENTION = ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0")
_WAN_ORIGINAL = {"attn1.to_q": "self_attn.q", "attn1.to_k": "self_attn.k", "attn1.to_v": "self_attn.v",
                 "attn1.to_out.0": "self_attn.o"}  # fmt: skip


def make_tiny_lora(family_id: str, path: str | Path, rank: int = 4, seed: int = 1, style: str = "diffusers",
                   scale: float = 0.5) -> Path:  # fmt: skip
    """A random LoRA for the self-attention of a family's tiny denoiser, as a .safetensors file:
    `style` "diffusers" (peft keys: transformer.<module>.lora_A.weight) or "wan-original" (the
    original-Wan / kohya keys: diffusion_model.blocks.N.self_attn.q.lora_down.weight + alpha).
    `rank` may be the published size of a real LoRA; `scale` sets how much it changes the output."""
    import torch
    from safetensors.torch import save_file

    family = get_family(family_id)
    transformer = family.tiny_components()["transformer"]
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, module in transformer.named_modules():
        if not isinstance(module, torch.nn.Linear) or not name.endswith(_ATTENTION):
            continue
        down = torch.randn(rank, module.in_features, generator=generator) * scale
        up = torch.randn(module.out_features, rank, generator=generator) * scale
        if style == "wan-original":
            block, _, rest = name.partition(".attn1.")
            base = f"diffusion_model.{block}.{_WAN_ORIGINAL['attn1.' + rest]}"
            tensors.update({f"{base}.lora_down.weight": down, f"{base}.lora_up.weight": up,
                            f"{base}.alpha": torch.tensor(float(rank))})  # fmt: skip
        elif style == "diffusers":
            tensors.update({f"transformer.{name}.lora_A.weight": down, f"transformer.{name}.lora_B.weight": up})
        else:
            raise ValueError(f"unknown LoRA style {style!r}")
    if not tensors:
        raise ValueError(f"{family_id}'s tiny denoiser has no self-attention to adapt")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path))
    return path
