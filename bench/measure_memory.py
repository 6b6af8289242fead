"""Peak GPU memory and speed of real-size pipelines with random weights, per phase and strategy.

Speed and memory do not depend on weight values, so each family is built at its published size
(configs below, from diffusers' conversion scripts and the models' config.json files) with random
weights in the family's dtype, made directly on the GPU; no download. Each run makes a video of the given size with
`--steps` denoising steps and records, separately:
  encode  peak while encoding the prompt and photo (up to the denoiser's first call)
  denoise peak over the denoising steps, and seconds per step
  decode  peak while the VAE decodes, and its seconds
for strategies: none (all on GPU), model (model CPU offload), group (block-level group offload
with CUDA streams), sequential (diffusers' sequential CPU offload), with VAE tiling at the largest
size where the VAE has it. The pipeline is called with the engine's own arguments and step hook
(its family room, i2v/families/), and placed by the engine's own code (i2v.placement). Results: one JSON line per run.

    python bench/measure_memory.py OUT_DIR --family wan2.2-ti2v-5b [--family ltx-video ...] [--steps 2]
    python bench/measure_memory.py OUT_DIR --check --family svd-xt   # on a CPU first: one layer deep
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

GiB = 2**30
# `--check` builds every layer stack this deep (full widths) to try the whole path on a CPU first.
DEPTH: int | None = None


def depth(layers: int) -> int:
    return layers if DEPTH is None else min(layers, DEPTH)


# ---------------------------------------------------------------------- full-size components
def _t5_tokenizer():
    from i2v.tiny import t5_tokenizer

    return t5_tokenizer()  # any tokenizer will do: pipelines pad prompts to their fixed length


def umt5_xxl():
    from transformers import UMT5Config, UMT5EncoderModel

    return UMT5EncoderModel(UMT5Config(
        vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=depth(24), num_heads=64,
        relative_attention_num_buckets=32, relative_attention_max_distance=128, feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
    ))  # fmt: skip


def t5_xxl():
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(
        vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=depth(24), num_heads=64,
        relative_attention_num_buckets=32, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
    ))  # fmt: skip


def clip_vit_h(projection: bool = False):
    """OpenCLIP ViT-H/14's image tower (Wan 2.1, SVD and I2VGen-XL use it)."""
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel, CLIPVisionModelWithProjection

    config = CLIPVisionConfig(hidden_size=1280, intermediate_size=5120, num_hidden_layers=depth(32),
                              num_attention_heads=16, image_size=224, patch_size=14, projection_dim=1024,
                              hidden_act="gelu")  # fmt: skip
    model_class = CLIPVisionModelWithProjection if projection else CLIPVisionModel
    return model_class(config), CLIPImageProcessor(crop_size=224, size=224)


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
        transformer=wan_transformer(num_attention_heads=40, num_layers=depth(40), ffn_dim=13824, in_channels=36,
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
        transformer=wan_transformer(num_attention_heads=24, num_layers=depth(30), ffn_dim=14336, in_channels=48,
                                    out_channels=48),  # fmt: skip
        transformer_2=None, vae=vae, text_encoder=umt5_xxl(), tokenizer=_t5_tokenizer(), image_encoder=None,
        image_processor=None, expand_timesteps=True,
        scheduler=UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0),
    )  # fmt: skip


def ltx_video():
    from diffusers import AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXVideoTransformer3DModel

    return dict(transformer=LTXVideoTransformer3DModel(num_layers=depth(28)), vae=AutoencoderKLLTXVideo(),
                text_encoder=t5_xxl(), tokenizer=_t5_tokenizer(), scheduler=FlowMatchEulerDiscreteScheduler())  # fmt: skip


def wan22_i2v_a14b():
    """Two 14B experts (high noise, then low noise), no image encoder: the photo enters as latents."""
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler

    expert = dict(num_attention_heads=40, num_layers=depth(40), ffn_dim=13824, in_channels=36, out_channels=16)
    return dict(
        transformer=wan_transformer(**expert), transformer_2=wan_transformer(**expert), vae=AutoencoderKLWan(),
        text_encoder=umt5_xxl(), tokenizer=_t5_tokenizer(), image_encoder=None, image_processor=None,
        boundary_ratio=0.9,
        scheduler=UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0),
    )  # fmt: skip


def cogvideox_5b_i2v():
    """scripts/convert_cogvideox_to_diffusers.py with --num_layers 42 --num_attention_heads 48, RoPE,
    and the I2V model's 32 input channels and learned position embeddings; T5 v1.1 XXL."""
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXTransformer3DModel

    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=48, attention_head_dim=64, in_channels=32, out_channels=16, num_layers=depth(42),
        use_rotary_positional_embeddings=True, use_learned_positional_embeddings=True,
    )  # fmt: skip
    scheduler = CogVideoXDDIMScheduler(
        snr_shift_scale=1.0, beta_schedule="scaled_linear", clip_sample=False, prediction_type="v_prediction",
        rescale_betas_zero_snr=True, set_alpha_to_one=True, timestep_spacing="trailing",
    )  # fmt: skip
    return dict(transformer=transformer, vae=AutoencoderKLCogVideoX(scaling_factor=0.7), text_encoder=t5_xxl(),
                tokenizer=_t5_tokenizer(), scheduler=scheduler)  # fmt: skip


def hunyuanvideo15_i2v():
    """scripts/convert_hunyuan_video1_5_to_diffusers.py, 480p_i2v: the 8.3B transformer and VAE at
    their defaults, Qwen2.5-VL-7B's language model, Glyph ByT5 (byt5-small) and SigLIP so400m/14-384."""
    from diffusers import AutoencoderKLHunyuanVideo15, FlowMatchEulerDiscreteScheduler, HunyuanVideo15Transformer3DModel
    from diffusers.guiders import ClassifierFreeGuidance
    from transformers import (
        ByT5Tokenizer,
        Qwen2_5_VLTextConfig,
        Qwen2_5_VLTextModel,
        SiglipImageProcessor,
        SiglipVisionConfig,
        SiglipVisionModel,
        T5Config,
        T5EncoderModel,
    )  # fmt: skip

    from i2v.families.hunyuan import qwen_tokenizer

    qwen = Qwen2_5_VLTextConfig(
        hidden_size=3584, intermediate_size=18944, num_hidden_layers=depth(28), num_attention_heads=28,
        num_key_value_heads=4, vocab_size=152064, rms_norm_eps=1e-6, max_position_embeddings=128000,
        rope_scaling={"mrope_section": [16, 24, 24], "rope_type": "default", "type": "default"},
        rope_theta=1000000.0, bos_token_id=None, eos_token_id=256, pad_token_id=256,
    )  # fmt: skip
    tokenizer_2 = ByT5Tokenizer()
    byt5 = T5Config(vocab_size=1510, d_model=1472, d_kv=64, d_ff=3584, num_layers=depth(12), num_heads=6,
                    relative_attention_num_buckets=32, feed_forward_proj="gated-gelu", tie_word_embeddings=False)  # fmt: skip
    siglip = SiglipVisionConfig(hidden_size=1152, intermediate_size=4304, num_hidden_layers=depth(27),
                                num_attention_heads=16, image_size=384, patch_size=14)  # fmt: skip
    return dict(
        transformer=HunyuanVideo15Transformer3DModel(num_layers=depth(54)), vae=AutoencoderKLHunyuanVideo15(),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=5.0), text_encoder=Qwen2_5_VLTextModel(qwen),
        tokenizer=qwen_tokenizer(), text_encoder_2=T5EncoderModel(byt5), tokenizer_2=tokenizer_2,
        guider=ClassifierFreeGuidance(guidance_scale=6.0), image_encoder=SiglipVisionModel(siglip),
        feature_extractor=SiglipImageProcessor(size={"height": 384, "width": 384}),
    )  # fmt: skip


def sd_vae(temporal: bool):
    """Stable Diffusion's VAE shape; SVD's decoder adds temporal layers."""
    from diffusers import AutoencoderKL, AutoencoderKLTemporalDecoder

    shape = dict(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                 layers_per_block=2, latent_channels=4, sample_size=768)  # fmt: skip
    if temporal:
        return AutoencoderKLTemporalDecoder(**shape)
    return AutoencoderKL(**shape, up_block_types=("UpDecoderBlock2D",) * 4)


def svd_xt():
    """The UNet's defaults are SVD's published config; ViT-H/14 image encoder."""
    from diffusers import EulerDiscreteScheduler, UNetSpatioTemporalConditionModel

    image_encoder, feature_extractor = clip_vit_h(projection=True)
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", interpolation_type="linear",
        prediction_type="v_prediction", sigma_max=700.0, sigma_min=0.002, steps_offset=1, timestep_spacing="leading",
        timestep_type="continuous", use_karras_sigmas=True,
    )  # fmt: skip
    return dict(unet=UNetSpatioTemporalConditionModel(), vae=sd_vae(temporal=True), image_encoder=image_encoder,
                feature_extractor=feature_extractor, scheduler=scheduler)  # fmt: skip


def i2vgen_xl():
    """scripts/convert_i2vgen_to_diffusers.py: the UNet at its defaults, SD 2.1's VAE, OpenCLIP ViT-H/14."""
    from diffusers import DDIMScheduler
    from diffusers.models.unets import I2VGenXLUNet
    from transformers import CLIPTextConfig, CLIPTextModel

    from i2v.tiny import clip_tokenizer

    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=depth(24), num_attention_heads=16,
        max_position_embeddings=77, hidden_act="gelu", projection_dim=1024, bos_token_id=0, eos_token_id=1,
        pad_token_id=1,
    ))  # fmt: skip
    image_encoder, feature_extractor = clip_vit_h(projection=True)
    scheduler = DDIMScheduler(
        beta_schedule="squaredcos_cap_v2", rescale_betas_zero_snr=True, set_alpha_to_one=True, clip_sample=False,
        steps_offset=1, timestep_spacing="leading", prediction_type="v_prediction",
    )  # fmt: skip
    return dict(unet=I2VGenXLUNet(), vae=sd_vae(temporal=False), text_encoder=text_encoder, tokenizer=clip_tokenizer(),
                image_encoder=image_encoder, feature_extractor=feature_extractor, scheduler=scheduler)  # fmt: skip


# ---------------------------------------------------------------------- long-video families
def wan21_flf2v_14b():
    """Wan 2.1 I2V 14B plus the position embedding over two photos' CLIP tokens (257 each)
    (scripts/convert_wan_to_diffusers.py, Wan-FLF2V-14B-720P); Wan's shift 16 for this task."""
    from diffusers import UniPCMultistepScheduler

    components = wan21_i2v_14b()
    components["transformer"] = wan_transformer(
        num_attention_heads=40, num_layers=depth(40), ffn_dim=13824, in_channels=36, out_channels=16, image_dim=1280,
        added_kv_proj_dim=5120, pos_embed_seq_len=2 * 257,
    )  # fmt: skip
    components["scheduler"] = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                                      flow_shift=16.0)  # fmt: skip
    return components


def ltx_095_vae():
    """scripts/convert_ltx_to_diffusers.py --version 0.9.5: the VAE with LTXVideo095DownBlock3D encoder
    and a timestep-aware decoder (ltx-video-condition; ltx-video-long uses it too)."""
    from diffusers import AutoencoderKLLTXVideo

    return AutoencoderKLLTXVideo(
        in_channels=3, out_channels=3, latent_channels=128, block_out_channels=(128, 256, 512, 1024, 2048),
        down_block_types=("LTXVideo095DownBlock3D",) * 4, decoder_block_out_channels=(256, 512, 1024),
        layers_per_block=(4, 6, 6, 2, 2), decoder_layers_per_block=(5, 5, 5, 5),
        spatio_temporal_scaling=(True, True, True, True), decoder_spatio_temporal_scaling=(True, True, True),
        decoder_inject_noise=(False, False, False, False),
        downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
        upsample_residual=(True, True, True), upsample_factor=(2, 2, 2), timestep_conditioning=True, patch_size=4,
        patch_size_t=1, resnet_norm_eps=1e-6, scaling_factor=1.0, encoder_causal=True, decoder_causal=False,
        spatial_compression_ratio=32, temporal_compression_ratio=8,
    )  # fmt: skip


def ltx_video_095():
    """scripts/convert_ltx_to_diffusers.py --version 0.9.5: the 2B transformer (the class's defaults)
    and 0.9.5's VAE (LTXVideo095DownBlock3D encoder, timestep-aware decoder); T5 v1.1 XXL."""
    from diffusers import FlowMatchEulerDiscreteScheduler, LTXVideoTransformer3DModel

    return dict(transformer=LTXVideoTransformer3DModel(num_layers=depth(28)), vae=ltx_095_vae(), text_encoder=t5_xxl(),
                tokenizer=_t5_tokenizer(), scheduler=FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=False))  # fmt: skip


def ltx_video_long():
    """LTX-Video 0.9.8 13B distilled: scripts/convert_ltx_to_diffusers.py's get_transformer_config("0.9.7"),
    the 13B config its 0.9.7 and 0.9.8 13B checkpoints convert with (48 layers of 32 heads x 128, cross
    attention and captions 4096); ltx-video-condition's 0.9.5+ VAE; T5 v1.1 XXL; the RF Euler-ancestral
    sampler the room loads (LTXEulerAncestralRFScheduler)."""
    from diffusers import LTXEulerAncestralRFScheduler, LTXVideoTransformer3DModel

    transformer = LTXVideoTransformer3DModel(
        in_channels=128, out_channels=128, patch_size=1, patch_size_t=1, num_attention_heads=32,
        attention_head_dim=128, cross_attention_dim=4096, num_layers=depth(48), activation_fn="gelu-approximate",
        qk_norm="rms_norm_across_heads", norm_elementwise_affine=False, norm_eps=1e-6, caption_channels=4096,
        attention_bias=True, attention_out_bias=True,
    )  # fmt: skip
    return dict(transformer=transformer, vae=ltx_095_vae(), text_encoder=t5_xxl(), tokenizer=_t5_tokenizer(),
                scheduler=LTXEulerAncestralRFScheduler())  # fmt: skip


def framepack():
    """lllyasviel/FramePackI2V_HY's transformer (HunyuanVideo 13B with FramePack's history
    embedders and SigLIP projection), HunyuanVideo's VAE, the Llama 3 8B (llava-llama-3-8b) and
    CLIP ViT-L text encoders, and flux_redux_bfl's SigLIP so400m/14-384."""
    from diffusers import (
        AutoencoderKLHunyuanVideo,
        FlowMatchEulerDiscreteScheduler,
        HunyuanVideoFramepackTransformer3DModel,
    )
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        LlamaConfig,
        LlamaModel,
        SiglipImageProcessor,
        SiglipVisionConfig,
        SiglipVisionModel,
    )  # fmt: skip

    from i2v.families.framepack import llama_tokenizer
    from i2v.tiny import clip_tokenizer

    transformer = HunyuanVideoFramepackTransformer3DModel(
        num_layers=depth(20), num_single_layers=depth(40), has_image_proj=True, image_proj_dim=1152,
        has_clean_x_embedder=True,
    )  # fmt: skip
    # The pipeline reads the third hidden state from the end: two layers at least, even for --check.
    llama = LlamaConfig(hidden_size=4096, intermediate_size=14336, num_hidden_layers=max(2, depth(32)),
                        num_attention_heads=32, num_key_value_heads=8, vocab_size=128320, rms_norm_eps=1e-5,
                        rope_theta=500000.0, max_position_embeddings=8192, bos_token_id=0, eos_token_id=2,
                        pad_token_id=1)  # fmt: skip
    clip_l = CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=depth(12),
                            num_attention_heads=12, max_position_embeddings=77, projection_dim=768, bos_token_id=0,
                            eos_token_id=1, pad_token_id=1)  # fmt: skip
    siglip = SiglipVisionConfig(hidden_size=1152, intermediate_size=4304, num_hidden_layers=depth(27),
                                num_attention_heads=16, image_size=384, patch_size=14)  # fmt: skip
    return dict(
        transformer=transformer, vae=AutoencoderKLHunyuanVideo(), text_encoder=LlamaModel(llama),
        tokenizer=llama_tokenizer(), text_encoder_2=CLIPTextModel(clip_l), tokenizer_2=clip_tokenizer(),
        image_encoder=SiglipVisionModel(siglip), scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),  # HunyuanVideo's
        feature_extractor=SiglipImageProcessor(size={"height": 384, "width": 384}),
    )  # fmt: skip


def skyreels_df(big: bool):
    """scripts/convert_skyreelsv2_to_diffusers.py, SkyReels-V2-DF-1.3B-540P (the Wan 1.3B design with
    an fps embedding) or -14B-540P (the Wan 14B design); Wan's VAE and UMT5-XXL; shift 5 for I2V."""
    from diffusers import AutoencoderKLWan, SkyReelsV2Transformer3DModel, UniPCMultistepScheduler

    size = dict(num_attention_heads=40, num_layers=depth(40), ffn_dim=13824, inject_sample_info=False) if big else \
        dict(num_attention_heads=12, num_layers=depth(30), ffn_dim=8960, inject_sample_info=True)
    transformer = SkyReelsV2Transformer3DModel(
        patch_size=(1, 2, 2), attention_head_dim=128, in_channels=16, out_channels=16, text_dim=4096, freq_dim=256,
        cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6, **size,
    )  # fmt: skip
    return dict(transformer=transformer, vae=AutoencoderKLWan(), text_encoder=umt5_xxl(), tokenizer=_t5_tokenizer(),
                scheduler=UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                                  flow_shift=5.0))  # fmt: skip


def wan_vace(big: bool):
    """scripts/convert_wan_to_diffusers.py, Wan-VACE-1.3B (the Wan 1.3B design, 12 heads and 30 layers, a
    VACE block beside every second layer) or Wan-VACE-14B (40 heads and 40 layers, a VACE block beside
    every fifth); vace_in_channels 96 (the video's latents kept and made, and the 8x8 mask folded in);
    Wan's VAE and UMT5-XXL; the shift diffusers' example gives the family's default size."""
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanVACETransformer3DModel

    layers, every = (40, 5) if big else (30, 2)
    size = dict(num_attention_heads=40, ffn_dim=13824) if big else dict(num_attention_heads=12, ffn_dim=8960)
    transformer = WanVACETransformer3DModel(
        patch_size=(1, 2, 2), attention_head_dim=128, in_channels=16, out_channels=16, text_dim=4096, freq_dim=256,
        cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6, num_layers=depth(layers),
        vace_layers=list(range(0, depth(layers), every)), vace_in_channels=96, **size,
    )  # fmt: skip
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                        flow_shift=5.0 if big else 3.0)  # fmt: skip
    return dict(transformer=transformer, transformer_2=None, vae=AutoencoderKLWan(), text_encoder=umt5_xxl(),
                tokenizer=_t5_tokenizer(), scheduler=scheduler)  # fmt: skip


def gemma3_12b():
    """google/gemma-3-12b-it's config.json (the text encoder Lightricks/LTX-2 ships, which the pipeline
    reads every text layer's hidden states of): 48 text layers of 3840 and SigLIP so400m's 27 of 1152."""
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    return Gemma3ForConditionalGeneration(Gemma3Config(
        text_config=dict(vocab_size=262208, hidden_size=3840, intermediate_size=15360, num_hidden_layers=depth(48),
                         num_attention_heads=16, num_key_value_heads=8, head_dim=256, query_pre_attn_scalar=256,
                         sliding_window=1024, max_position_embeddings=131072, rope_theta=1_000_000.0,
                         rope_local_base_freq=10_000.0, rope_scaling={"rope_type": "linear", "factor": 8.0},
                         rms_norm_eps=1e-6, hidden_activation="gelu_pytorch_tanh"),
        vision_config=dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=depth(27),
                           num_attention_heads=16, image_size=896, patch_size=14, vision_use_head=False),
        mm_tokens_per_image=256, boi_token_index=255999, eoi_token_index=256000, image_token_index=262144,
    ))  # fmt: skip


def ltx2():
    """scripts/convert_ltx2_to_diffusers.py --version 2.0 (Lightricks/LTX-2): the 19B audio-video
    transformer (48 layers; video 32 heads x 128, audio 32 x 64), its text connectors, the video VAE
    (without timestep conditioning, the script's default), the audio VAE, the 24 kHz vocoder and the
    dev checkpoint's scheduler; Gemma 3 12B; a character tokenizer (prompts are padded to 1024 tokens)."""
    from diffusers import (
        AutoencoderKLLTX2Audio,
        AutoencoderKLLTX2Video,
        FlowMatchEulerDiscreteScheduler,
        LTX2VideoTransformer3DModel,
    )
    from diffusers.pipelines.ltx2 import LTX2TextConnectors
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder

    from i2v.families.ltx2 import gemma_tokenizer

    transformer = LTX2VideoTransformer3DModel(
        in_channels=128, out_channels=128, patch_size=1, patch_size_t=1, num_attention_heads=32, attention_head_dim=128,
        cross_attention_dim=4096, vae_scale_factors=(8, 32, 32), pos_embed_max_pos=20, base_height=2048,
        base_width=2048, gated_attn=False, cross_attn_mod=False, audio_in_channels=128, audio_out_channels=128,
        audio_patch_size=1, audio_patch_size_t=1, audio_num_attention_heads=32, audio_attention_head_dim=64,
        audio_cross_attention_dim=2048, audio_scale_factor=4, audio_pos_embed_max_pos=20, audio_sampling_rate=16000,
        audio_hop_length=160, audio_gated_attn=False, audio_cross_attn_mod=False, num_layers=depth(48),
        activation_fn="gelu-approximate", qk_norm="rms_norm_across_heads", norm_elementwise_affine=False,
        norm_eps=1e-6, caption_channels=3840, attention_bias=True, attention_out_bias=True, rope_theta=10000.0,
        rope_double_precision=True, causal_offset=1, timestep_scale_multiplier=1000,
        cross_attn_timestep_scale_multiplier=1000, rope_type="split", use_prompt_embeddings=True, perturbed_attn=False,
    )  # fmt: skip
    connectors = LTX2TextConnectors(
        caption_channels=3840, text_proj_in_factor=depth(48) + 1, video_connector_num_attention_heads=30,
        video_connector_attention_head_dim=128, video_connector_num_layers=depth(2),
        video_connector_num_learnable_registers=128, video_gated_attn=False, audio_connector_num_attention_heads=30,
        audio_connector_attention_head_dim=128, audio_connector_num_layers=depth(2),
        audio_connector_num_learnable_registers=128, audio_gated_attn=False, connector_rope_base_seq_len=4096,
        rope_theta=10000.0, rope_double_precision=True, causal_temporal_positioning=False, rope_type="split",
        per_modality_projections=False, proj_bias=False,
    )  # fmt: skip
    vae = AutoencoderKLLTX2Video(
        in_channels=3, out_channels=3, latent_channels=128, block_out_channels=(256, 512, 1024, 2048),
        down_block_types=("LTX2VideoDownBlock3D",) * 4, decoder_block_out_channels=(256, 512, 1024),
        layers_per_block=tuple(depth(n) for n in (4, 6, 6, 2, 2)),  # --check: 1.2B parameters at full depth,
        decoder_layers_per_block=tuple(depth(n) for n in (5, 5, 5, 5)),  # 5 GB in float32 on the CPU
        spatio_temporal_scaling=(True, True, True, True), decoder_spatio_temporal_scaling=(True, True, True),
        decoder_inject_noise=(False, False, False, False),
        downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
        upsample_type=("spatiotemporal", "spatiotemporal", "spatiotemporal"), upsample_residual=(True, True, True),
        upsample_factor=(2, 2, 2), timestep_conditioning=False, patch_size=4, patch_size_t=1, resnet_norm_eps=1e-6,
        encoder_causal=True, decoder_causal=False, encoder_spatial_padding_mode="zeros",
        decoder_spatial_padding_mode="reflect", spatial_compression_ratio=32, temporal_compression_ratio=8,
    )  # fmt: skip
    audio_vae = AutoencoderKLLTX2Audio(
        base_channels=128, output_channels=2, ch_mult=(1, 2, 4), num_res_blocks=2, attn_resolutions=None,
        in_channels=2, resolution=256, latent_channels=8, norm_type="pixel", causality_axis="height", dropout=0.0,
        mid_block_add_attention=False, sample_rate=16000, mel_hop_length=160, is_causal=True, mel_bins=64,
        double_z=True,
    )  # fmt: skip
    vocoder = LTX2Vocoder(
        in_channels=128, hidden_channels=1024, out_channels=2, upsample_kernel_sizes=[16, 15, 8, 4, 4],
        upsample_factors=[6, 5, 2, 2, 2], resnet_kernel_sizes=[3, 7, 11], resnet_dilations=[[1, 3, 5]] * 3,
        act_fn="leaky_relu", leaky_relu_negative_slope=0.1, antialias=False, final_act_fn="tanh", final_bias=True,
        output_sampling_rate=24000,
    )  # fmt: skip
    scheduler = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05,
                                                base_image_seq_len=1024, max_image_seq_len=4096,
                                                shift_terminal=0.1)  # fmt: skip
    return dict(transformer=transformer, connectors=connectors, vae=vae, audio_vae=audio_vae, vocoder=vocoder,
                text_encoder=gemma3_12b(), tokenizer=gemma_tokenizer(), scheduler=scheduler)  # fmt: skip


BUILDERS = {
    "wan2.1-i2v-14b-480p": wan21_i2v_14b, "wan2.2-ti2v-5b": wan22_ti2v_5b, "ltx-video": ltx_video,
    "wan2.2-i2v-a14b": wan22_i2v_a14b, "cogvideox-5b-i2v": cogvideox_5b_i2v, "hunyuanvideo-i2v": hunyuanvideo15_i2v,
    "svd-xt": svd_xt, "i2vgen-xl": i2vgen_xl, "wan2.1-flf2v-14b-720p": wan21_flf2v_14b,
    "ltx-video-condition": ltx_video_095, "framepack": framepack,
    "skyreels-v2-df-1.3b-540p": lambda: skyreels_df(big=False),
    "skyreels-v2-df-14b-540p": lambda: skyreels_df(big=True), "ltx-video-long": ltx_video_long,
    "wan-vace-1.3b": lambda: wan_vace(big=False), "wan-vace-14b": lambda: wan_vace(big=True),
    "ltx-2": ltx2,
}  # fmt: skip

# (height, width, num_frames) to measure, per family: the published sizes and smaller ones to fit
# lines. CogVideoX makes 480x720 only; HunyuanVideo 1.5 picks a bucket of ~640x640 pixels itself.
SIZES = {
    "wan2.1-i2v-14b-480p": [(480, 832, 33), (480, 832, 81), (720, 1280, 33)],
    "wan2.2-ti2v-5b": [(480, 832, 49), (704, 1280, 49), (704, 1280, 121)],
    "ltx-video": [(480, 704, 81), (480, 704, 161), (704, 1216, 121)],
    "wan2.2-i2v-a14b": [(480, 832, 33), (720, 1280, 33)],  # Wan 2.1's VAE: its decode grows with the frame
    "cogvideox-5b-i2v": [(480, 720, 25), (480, 720, 49)],
    "hunyuanvideo-i2v": [(640, 640, 33), (480, 848, 121)],
    "svd-xt": [(320, 576, 14), (576, 1024, 14), (576, 1024, 25)],
    "i2vgen-xl": [(448, 832, 16), (704, 1280, 16), (704, 1280, 32)],
    # Long-video families: FramePack denoises one section (36 frames) at a time and SkyReels one
    # window (97 frames), so their denoise peak follows the section or window, not the clip.
    "wan2.1-flf2v-14b-720p": [(480, 832, 33), (720, 1280, 33), (720, 1280, 81)],
    "ltx-video-condition": [(512, 768, 81), (512, 768, 161), (704, 1216, 121)],
    "framepack": [(480, 832, 37), (480, 832, 73), (480, 832, 145)],
    "skyreels-v2-df-1.3b-540p": [(544, 960, 97), (544, 960, 177), (544, 960, 257)],
    "skyreels-v2-df-14b-540p": [(544, 960, 97), (544, 960, 177)],
    # LTX-Video 0.9.8 13B over windows of 80 frames sharing 24: its default and a longer clip
    "ltx-video-long": [(512, 704, 161), (512, 704, 361), (480, 832, 161)],
    # Wan 2.1 VACE: the 1.3B makes 480p; the 14B 480p and 720p (bench/long_families.py adds references)
    "wan-vace-1.3b": [(480, 832, 33), (480, 832, 81)],
    "wan-vace-14b": [(480, 832, 81), (720, 1280, 33), (720, 1280, 81)],
    # LTX-2: its default (5 s at 24 fps), a longer clip and 720p; the sound's tokens grow with the seconds
    "ltx-2": [(512, 768, 121), (512, 768, 241), (704, 1216, 121)],
}


def build(family_id: str, device: str = "cuda"):
    """The family's pipeline at full size with random weights, in its dtype (float32 on a CPU)."""
    from i2v.families import get_family

    family = get_family(family_id)
    torch.manual_seed(0)
    torch.set_default_dtype(getattr(torch, family.dtype) if device.startswith("cuda") else torch.float32)
    try:
        with torch.device(device):
            components = BUILDERS[family_id]()
    finally:
        torch.set_default_dtype(torch.float32)
    scheduler = components["scheduler"]  # made again outside the device: some keep numpy-bound tensors
    components["scheduler"] = type(scheduler).from_config(scheduler.config)
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
class _Cuda:
    """Peak-memory counters and a sync, or nothing at all on a CPU (`--check`)."""

    def __init__(self, on: bool):
        self.on = on

    def sync(self):
        if self.on:
            torch.cuda.synchronize()

    def peak(self) -> float:
        return torch.cuda.max_memory_allocated() / GiB if self.on else 0.0

    def reset(self):
        if self.on:
            torch.cuda.reset_peak_memory_stats()

    def allocated(self) -> float:
        return torch.cuda.memory_allocated() / GiB if self.on else 0.0


class _Clock:
    """Stands in for the engine's step watch: the time at the end of each denoising step."""

    def __init__(self, cuda: _Cuda):
        self.cuda, self.times = cuda, []

    def step(self, done: int | None = None) -> None:
        # Time from the end of step 1: the first step also pays for moving weights (offload).
        self.cuda.sync()
        self.times.append(time.perf_counter())


def measure(pipe, family, height, width, num_frames, steps, strategy, tiling) -> dict:
    """One run through the pipeline with the engine's own arguments and step hook; the peak of each
    phase (encode, denoise, decode) and the seconds of each."""
    from i2v.request import GenerationRequest

    cuda = _Cuda(torch.cuda.is_available())
    marks: dict[str, float] = {}
    denoiser = getattr(pipe, "transformer", None) or pipe.unet

    def first_call(module, args, kwargs):
        if "denoise_start" not in marks:
            cuda.sync()
            marks["encode_peak"] = cuda.peak()
            cuda.reset()
            marks["denoise_start"] = time.perf_counter()

    handle = denoiser.register_forward_pre_hook(first_call, with_kwargs=True)
    decode = pipe.vae.decode

    def timed_decode(*args, **kwargs):  # SVD and I2VGen-XL decode in chunks: one phase over all calls
        cuda.sync()
        if "decode_start" not in marks:
            marks["denoise_peak"] = cuda.peak()
            marks["decode_start"] = time.perf_counter()
            cuda.reset()
        out = decode(*args, **kwargs)
        cuda.sync()
        marks["decode_peak"] = max(marks.get("decode_peak", 0.0), cuda.peak())
        marks["decode_end"] = time.perf_counter()
        return out

    pipe.vae.decode = timed_decode
    if tiling:
        pipe.vae.enable_tiling()
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8))
    # The engine's own call: the family's arguments and step hook, for the knobs of a checked request.
    knobs = GenerationRequest(image="photo.png", prompt="a cat turns its head", negative_prompt="blurry",
                              model=family.id, height=height, width=width, num_frames=num_frames, fps=family.fps,
                              num_inference_steps=steps, guidance_scale=family.guidance_scale, seed=0)  # fmt: skip
    # A family that only runs between two photos (Wan 2.1 FLF2V) gets the photo as its last one too.
    # A family that takes references (Wan VACE) gets two subjects, as bench/long_families.py gives it:
    # each is a latent frame more to denoise, so the planner's profile holds a typical request's.
    references = ([Image.fromarray(np.random.default_rng(3 + k).integers(0, 255, (height, width // 2, 3), dtype=np.uint8))
                   for k in range(2)] if family.references else [])  # fmt: skip
    kwargs = family.call_kwargs(pipe, knobs, photo, photo if getattr(family, "needs_last_image", False) else None,
                                **({"references": references} if family.references else {}))  # fmt: skip
    clock = _Clock(cuda)
    restore = family.watch_steps(pipe, kwargs, clock)
    gc.collect()
    if cuda.on:
        torch.cuda.empty_cache()
    cuda.reset()
    baseline = cuda.allocated()
    started = time.perf_counter()
    row = dict(family=family.id, height=height, width=width, num_frames=num_frames, steps=steps, strategy=strategy,
               tiling=tiling, baseline_gb=round(baseline, 3))  # fmt: skip
    try:
        frames = pipe(**kwargs).frames[0]
        cuda.sync()
        shape = list(np.asarray(frames).shape[:3])
        if shape != [num_frames, height, width]:  # the pipeline chose another size: the row would lie
            raise RuntimeError(f"made {shape} frames x height x width, not {[num_frames, height, width]}")
        times = clock.times
        row.update(
            ok=True,
            encode_peak_gb=round(marks["encode_peak"], 3),
            denoise_peak_gb=round(marks["denoise_peak"], 3),
            decode_peak_gb=round(marks["decode_peak"], 3),
            peak_gb=round(max(marks["encode_peak"], marks["denoise_peak"], marks["decode_peak"]), 3),
            seconds_per_step=round((times[-1] - times[0]) / (len(times) - 1), 3),
            first_step_seconds=round(times[0] - marks["denoise_start"], 3),
            decode_seconds=round(marks["decode_end"] - marks["decode_start"], 3),
            encode_seconds=round(marks["denoise_start"] - started, 3),
        )
    except torch.OutOfMemoryError as exc:
        row.update(ok=False, error=str(exc).splitlines()[0][:200])
    finally:
        restore()
        handle.remove()
        del pipe.vae.decode
        if tiling:
            pipe.vae.disable_tiling()
    return row


def apply_strategy(pipe, strategy: str) -> None:
    """Place the pipeline exactly as the engine does (i2v.placement.place), after undoing the last placement."""
    from i2v.placement import place

    pipe.remove_all_hooks()
    if strategy != "none":
        pipe.to("cpu")
    place(pipe, strategy, "cuda")
    gc.collect()
    torch.cuda.empty_cache()


def check_size(family, height: int, width: int) -> tuple[int, int, int]:
    """A small size for `--check`: a quarter of each side and the fewest frames the family takes
    (CogVideoX's size is fixed and HunyuanVideo 1.5 picks its own bucket: those stay)."""
    frames = max(2, family.frame_step + family.frame_offset)
    if family.size_rule != "multiple":
        return height, width, frames
    m = family.size_multiple
    return max(m, height // 4 // m * m), max(m, width // 4 // m * m), frames


def check(families: list[str]) -> None:
    """Every builder at full width but one layer deep, through the same measure() on the CPU: a
    wrong config fails here in minutes instead of on the GPU. CogVideoX and HunyuanVideo 1.5 keep
    their full frame size, whose VAE decode needs more than 24 GB of RAM in float32."""
    global DEPTH
    DEPTH = 1
    torch.set_num_threads(max(1, torch.get_num_threads()))
    for family_id in families:
        started = time.perf_counter()
        family, pipe = build(family_id, device="cpu")
        size = check_size(family, *SIZES[family_id][0][:2])
        row = measure(pipe, family, *size, 2, "none", False)
        params = {name: round(sum(p.numel() for p in c.parameters()) / 1e9, 3)
                  for name, c in pipe.components.items() if isinstance(c, torch.nn.Module)}  # fmt: skip
        print(json.dumps({**row, "params_b_one_layer_deep": params,
                          "check_seconds": round(time.perf_counter() - started, 1)}), flush=True)  # fmt: skip
        if not row.get("ok"):
            raise SystemExit(f"{family_id}: {row}")
        del pipe
        gc.collect()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--family", action="append", required=True, choices=sorted(BUILDERS))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--strategies", default="none,model,group")
    parser.add_argument("--check", action="store_true", help="one layer deep, small, on the CPU: try the path")
    args = parser.parse_args()
    if args.check:
        return check(args.family)
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "memory_runs.jsonl"
    torch.backends.cuda.matmul.allow_tf32 = True
    for family_id in args.family:
        started = time.perf_counter()
        family, pipe = build(family_id)
        header = dict(family=family_id, kind="weights", weights_gb={k: round(v, 3) for k, v in weights_gb(pipe).items()},
                      build_seconds=round(time.perf_counter() - started, 1), device=torch.cuda.get_device_name(),
                      torch=torch.__version__, date=time.strftime("%Y-%m-%d"))  # fmt: skip
        print(json.dumps(header), flush=True)
        with results.open("a") as out:
            out.write(json.dumps(header) + "\n")
        tiles = hasattr(pipe.vae, "use_tiling")  # SVD's VAE has no tiled decode
        for strategy in args.strategies.split(","):
            apply_strategy(pipe, strategy)
            for height, width, frames in SIZES[family_id]:
                last = (height, width, frames) == SIZES[family_id][-1]
                for tiling in (False, True) if last and tiles else (False,):
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
