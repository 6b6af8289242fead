"""Tiny random-weight models of every family, for tests and demos.

Each builder follows the shapes of diffusers' own `get_dummy_components` (seed 0 before every
component) so that a whole pipeline runs on a CPU in well under a second per step. `make_tiny`
writes the pipeline with `save_pretrained`; the engine loads it back through the very same
`from_pretrained` path that real weights take, so tests exercise the product's loading code.

Tokenizers are built in memory: nothing here touches the Hugging Face hub.
This module knows nothing about requests, exports or the camera engine.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

from .models import FAMILY_MARKER, Family, get_family

# Each family's real weights are big; the tiny ones only need to be shape-compatible.
# Every builder takes no argument and returns the pipeline's components as a dict.


def _t5_tokenizer():
    from transformers import T5Tokenizer

    pieces = ["<pad>", "</s>", "<unk>", "▁"]
    pieces += ["▁" + c for c in string.ascii_lowercase]
    pieces += list(string.ascii_letters + string.digits + string.punctuation)
    vocab = [(p, 0.0 if i < 3 else -float(i)) for i, p in enumerate(pieces)]
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def _t5_encoder(vocab_size: int, d_model: int = 32, umt5: bool = False):
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


def _clip_tokenizer():
    from transformers import CLIPTokenizer

    specials = ["<|startoftext|>", "<|endoftext|>"]
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    tokens = specials + chars + [c + "</w>" for c in chars]
    return CLIPTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=[], model_max_length=77)


def _qwen_tokenizer():
    """A byte-level BPE with no merges: every byte is one token, as in Qwen2 before merging."""
    from transformers import Qwen2Tokenizer

    # GPT-2's printable stand-ins for the 256 byte values.
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    others = [b for b in range(256) if b not in printable]
    chars = [chr(b) for b in printable] + [chr(256 + i) for i in range(len(others))]
    vocab = {ch: i for i, ch in enumerate(chars)}
    for special in ("<|endoftext|>", "<|im_start|>", "<|im_end|>"):
        vocab[special] = len(vocab)
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=[])
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tokenizer.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
        "{% if m['content'] is string %}{{ m['content'] }}"
        "{% else %}{% for c in m['content'] %}{% if c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
        "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    return tokenizer


def _clip_vision(hidden: int, image_size: int = 32, patch_size: int = 1, projection: bool = True):
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


def _wan_vae(wide: bool = False):
    import torch
    from diffusers import AutoencoderKLWan

    torch.manual_seed(0)
    if wide:  # Wan 2.2 TI2V 5B: 48 latent channels, 16x spatial compression
        return AutoencoderKLWan(
            base_dim=3,
            z_dim=48,
            in_channels=12,
            out_channels=12,
            is_residual=True,
            patch_size=2,
            latents_mean=[0.0] * 48,
            latents_std=[1.0] * 48,
            dim_mult=[1, 1, 1, 1],
            num_res_blocks=1,
            scale_factor_spatial=16,
            scale_factor_temporal=4,
            temperal_downsample=[False, True, True],
        )
    return AutoencoderKLWan(
        base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
    )


def _wan_transformer(in_channels: int, out_channels: int, image_dim: int | None):
    import torch
    from diffusers import WanTransformer3DModel

    torch.manual_seed(0)
    return WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=in_channels,
        out_channels=out_channels,
        text_dim=32,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
        image_dim=image_dim,
    )


def _t5_text(umt5: bool = False):
    import torch

    tokenizer = _t5_tokenizer()
    torch.manual_seed(0)
    return tokenizer, _t5_encoder(len(tokenizer), umt5=umt5)


def wan21() -> dict:
    from diffusers import FlowMatchEulerDiscreteScheduler

    tokenizer, text_encoder = _t5_text(umt5=True)
    image_encoder, image_processor = _clip_vision(hidden=4, projection=False)
    return {
        "transformer": _wan_transformer(36, 16, image_dim=4),
        "vae": _wan_vae(),
        "scheduler": FlowMatchEulerDiscreteScheduler(shift=3.0),
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "image_encoder": image_encoder,
        "image_processor": image_processor,
        "transformer_2": None,
    }


def wan22_a14b() -> dict:
    from diffusers import UniPCMultistepScheduler

    tokenizer, text_encoder = _t5_text(umt5=True)
    return {
        "transformer": _wan_transformer(36, 16, image_dim=None),
        "transformer_2": _wan_transformer(36, 16, image_dim=None),
        "vae": _wan_vae(),
        "scheduler": UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0),
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "image_encoder": None,
        "image_processor": None,
        "boundary_ratio": 0.875,
    }


def wan22_5b() -> dict:
    from diffusers import UniPCMultistepScheduler

    tokenizer, text_encoder = _t5_text(umt5=True)
    return {
        "transformer": _wan_transformer(48, 48, image_dim=None),
        "transformer_2": None,
        "vae": _wan_vae(wide=True),
        "scheduler": UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0),
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "image_encoder": None,
        "image_processor": None,
        "expand_timesteps": True,
    }


def ltx() -> dict:
    import torch
    from diffusers import AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXVideoTransformer3DModel

    torch.manual_seed(0)
    transformer = LTXVideoTransformer3DModel(
        in_channels=8,
        out_channels=8,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=4,
        attention_head_dim=8,
        cross_attention_dim=32,
        num_layers=1,
        caption_channels=32,
    )
    torch.manual_seed(0)
    vae = AutoencoderKLLTXVideo(
        in_channels=3,
        out_channels=3,
        latent_channels=8,
        block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, False, False),
        decoder_spatio_temporal_scaling=(True, True, False, False),
        decoder_inject_noise=(False, False, False, False, False),
        upsample_residual=(False, False, False, False),
        upsample_factor=(1, 1, 1, 1),
        timestep_conditioning=False,
        patch_size=1,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
    )
    tokenizer, text_encoder = _t5_text()
    return {
        "transformer": transformer,
        "vae": vae,
        "scheduler": FlowMatchEulerDiscreteScheduler(),
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
    }


def cogvideox() -> dict:
    import torch
    from diffusers import AutoencoderKLCogVideoX, CogVideoXTransformer3DModel, DDIMScheduler

    torch.manual_seed(0)
    # Learned positional embeddings fix the size, as in CogVideoX-5b-I2V; this one is made for 32x32.
    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=2,
        attention_head_dim=16,
        in_channels=8,
        out_channels=4,
        time_embed_dim=2,
        text_embed_dim=32,
        num_layers=1,
        sample_width=4,
        sample_height=4,
        sample_frames=9,
        patch_size=2,
        temporal_compression_ratio=4,
        max_text_seq_length=226,  # the real model's, which the pipeline pads prompts to
        use_rotary_positional_embeddings=True,
        use_learned_positional_embeddings=True,
    )
    torch.manual_seed(0)
    vae = AutoencoderKLCogVideoX(
        in_channels=3,
        out_channels=3,
        down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=2,
        temporal_compression_ratio=4,
    )
    tokenizer, text_encoder = _t5_text()
    return {
        "transformer": transformer,
        "vae": vae,
        "scheduler": DDIMScheduler(),
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
    }


def hunyuan15() -> dict:
    import torch
    from diffusers import AutoencoderKLHunyuanVideo15, FlowMatchEulerDiscreteScheduler, HunyuanVideo15Transformer3DModel
    from diffusers.guiders import ClassifierFreeGuidance
    from transformers import (
        ByT5Tokenizer,
        Qwen2_5_VLTextConfig,
        Qwen2_5_VLTextModel,
        SiglipImageProcessor,
        SiglipVisionConfig,
        SiglipVisionModel,
    )

    torch.manual_seed(0)
    transformer = HunyuanVideo15Transformer3DModel(
        in_channels=9,
        out_channels=4,
        num_attention_heads=2,
        attention_head_dim=8,
        num_layers=1,
        num_refiner_layers=1,
        mlp_ratio=2.0,
        patch_size=1,
        patch_size_t=1,
        text_embed_dim=16,
        text_embed_2_dim=32,
        image_embed_dim=12,
        rope_axes_dim=(2, 2, 4),
        target_size=32,
        task_type="i2v",
    )
    torch.manual_seed(0)
    vae = AutoencoderKLHunyuanVideo15(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(16, 16),
        layers_per_block=1,
        spatial_compression_ratio=4,
        temporal_compression_ratio=4,
        downsample_match_channel=False,
        upsample_match_channel=False,
    )
    torch.manual_seed(0)
    qwen = Qwen2_5_VLTextConfig(
        hidden_size=16,
        intermediate_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        vocab_size=300,
        bos_token_id=None,
        eos_token_id=256,
        pad_token_id=256,
        rope_scaling={"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
        rope_theta=1000000.0,
    )
    text_encoder = Qwen2_5_VLTextModel(qwen)
    torch.manual_seed(0)
    tokenizer_2 = ByT5Tokenizer()
    text_encoder_2 = _t5_encoder(len(tokenizer_2))
    torch.manual_seed(0)
    image_encoder = SiglipVisionModel(
        SiglipVisionConfig(
            hidden_size=12, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8
        )
    )
    feature_extractor = SiglipImageProcessor(size={"height": 32, "width": 32})
    return {
        "transformer": transformer.eval(),
        "vae": vae.eval(),
        "scheduler": FlowMatchEulerDiscreteScheduler(shift=5.0),
        "text_encoder": text_encoder.eval(),
        "tokenizer": _qwen_tokenizer(),
        "text_encoder_2": text_encoder_2.eval(),
        "tokenizer_2": tokenizer_2,
        "guider": ClassifierFreeGuidance(guidance_scale=6.0),
        "image_encoder": image_encoder.eval(),
        "feature_extractor": feature_extractor,
    }


def svd() -> dict:
    import torch
    from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler, UNetSpatioTemporalConditionModel

    torch.manual_seed(0)
    unet = UNetSpatioTemporalConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=32,
        in_channels=8,
        out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        cross_attention_dim=32,
        num_attention_heads=8,
        projection_class_embeddings_input_dim=96,
        addition_time_embed_dim=32,
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        interpolation_type="linear",
        num_train_timesteps=1000,
        prediction_type="v_prediction",
        sigma_max=700.0,
        sigma_min=0.002,
        steps_offset=1,
        timestep_spacing="leading",
        timestep_type="continuous",
        use_karras_sigmas=True,
    )
    torch.manual_seed(0)
    vae = AutoencoderKLTemporalDecoder(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        latent_channels=4,
    )
    # SVD resizes the photo to CLIP's 224x224 itself, whatever the processor says.
    image_encoder, feature_extractor = _clip_vision(hidden=32, image_size=224, patch_size=14)
    return {
        "unet": unet,
        "image_encoder": image_encoder,
        "scheduler": scheduler,
        "vae": vae,
        "feature_extractor": feature_extractor,
    }


def i2vgenxl() -> dict:
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler
    from diffusers.models.unets import I2VGenXLUNet
    from transformers import CLIPTextConfig, CLIPTextModel

    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False
    )
    torch.manual_seed(0)
    unet = I2VGenXLUNet(
        block_out_channels=(4, 8),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=4,
        attention_head_dim=4,
        num_attention_heads=None,
        norm_num_groups=2,
    )
    torch.manual_seed(0)
    vae = AutoencoderKL(
        block_out_channels=(8,),
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D"],
        latent_channels=4,
        sample_size=32,
        norm_num_groups=2,
    )
    tokenizer = _clip_tokenizer()
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=1,
            hidden_size=4,
            intermediate_size=16,
            layer_norm_eps=1e-05,
            num_attention_heads=2,
            num_hidden_layers=2,
            pad_token_id=1,
            vocab_size=len(tokenizer),
            hidden_act="gelu",
            projection_dim=32,
        )
    )
    image_encoder, feature_extractor = _clip_vision(hidden=4)
    return {
        "unet": unet,
        "scheduler": scheduler,
        "vae": vae,
        "text_encoder": text_encoder,
        "image_encoder": image_encoder,
        "tokenizer": tokenizer,
        "feature_extractor": feature_extractor,
    }


BUILDERS = {
    "wan21": wan21,
    "wan22_a14b": wan22_a14b,
    "wan22_5b": wan22_5b,
    "ltx": ltx,
    "cogvideox": cogvideox,
    "hunyuan15": hunyuan15,
    "svd": svd,
    "i2vgenxl": i2vgenxl,
}


def build_tiny(family: Family):
    """The family's pipeline with tiny random weights, in float32, on the CPU."""
    if family.tiny not in BUILDERS:
        raise ValueError(f"family {family.id!r} has no tiny model (tiny = {family.tiny!r})")
    return family.pipeline_class()(**BUILDERS[family.tiny]())


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
