"""HunyuanVideo 1.5 I2V (480p) through HunyuanVideo15ImageToVideoPipeline.

- It resizes the photo to the resolution bucket nearest its aspect ratio, whatever size is asked;
  the engine asks the pipeline's own bucket code which one, and says so.
- Guidance goes through the pipeline's guider, not a call argument.
- The pipeline has no `callback_on_step_end`: steps are seen through the scheduler.
- Its image encoder (SigLIP) holds an nn.MultiheadAttention, which sequential offload must keep whole
  (see i2v.placement.sequential_offload).
We use 1.5 rather than 1.0: 8.3B instead of 13B plus an 8B LLaVA encoder, better motion, and it
fits a 24 GB card with offload."""

from __future__ import annotations

from messages import Message, note

from .base import Family, ModelSource


class HunyuanVideo15(Family):
    step_hook = "scheduler"

    def fit_size(self, height: int, width: int, asked: bool, source: ModelSource, notes: list[Message]) -> tuple[int, int]:
        height, width = super().fit_size(height, width, asked, source, notes)
        bucket = self.bucket(source, height, width)
        if bucket != (height, width):
            notes.append(note("request.bucket", model=self.id, height=height, width=width, new_height=bucket[0],
                              new_width=bucket[1]))  # fmt: skip
        return bucket

    def bucket(self, source: ModelSource, height: int, width: int) -> tuple[int, int]:
        """The bucket the pipeline will pick for this aspect ratio (its own code, asked)."""
        import numpy as np
        from diffusers.pipelines.hunyuan_video1_5.image_processor import generate_crop_size_list, get_closest_ratio

        target = (source.component_config("transformer") or {}).get("target_size", self.height)
        vae_scale = (source.component_config("vae") or {}).get("spatial_compression_ratio", self.size_multiple)
        buckets = generate_crop_size_list(base_size=target, patch_size=vae_scale)
        ratios = np.array([round(float(h) / float(w), 5) for h, w in buckets])
        bucket_h, bucket_w = get_closest_ratio(height, width, ratios, buckets)[0]
        return int(bucket_h), int(bucket_w)

    def call_kwargs(self, pipe, knobs, photo, last_photo, keyframes=()) -> dict:
        kwargs = super().call_kwargs(pipe, knobs, photo, last_photo, keyframes)
        pipe.guider.guidance_scale = kwargs.pop("guidance_scale")  # this pipeline takes it through its guider
        return kwargs

    def tiny_components(self) -> dict:
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

        from ..tiny import t5_encoder

        torch.manual_seed(0)
        transformer = HunyuanVideo15Transformer3DModel(
            in_channels=9, out_channels=4, num_attention_heads=2, attention_head_dim=8, num_layers=1,
            num_refiner_layers=1, mlp_ratio=2.0, patch_size=1, patch_size_t=1, text_embed_dim=16, text_embed_2_dim=32,
            image_embed_dim=12, rope_axes_dim=(2, 2, 4), target_size=32, task_type="i2v",
        )  # fmt: skip
        torch.manual_seed(0)
        vae = AutoencoderKLHunyuanVideo15(
            in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 16), layers_per_block=1,
            spatial_compression_ratio=4, temporal_compression_ratio=4, downsample_match_channel=False,
            upsample_match_channel=False,
        )  # fmt: skip
        torch.manual_seed(0)
        qwen = Qwen2_5_VLTextConfig(
            hidden_size=16, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
            vocab_size=300, bos_token_id=None, eos_token_id=256, pad_token_id=256,
            rope_scaling={"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"}, rope_theta=1000000.0,
        )  # fmt: skip
        text_encoder = Qwen2_5_VLTextModel(qwen)
        torch.manual_seed(0)
        tokenizer_2 = ByT5Tokenizer()
        text_encoder_2 = t5_encoder(len(tokenizer_2))
        torch.manual_seed(0)
        image_encoder = SiglipVisionModel(SiglipVisionConfig(
            hidden_size=12, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8
        ))  # fmt: skip
        return {
            "transformer": transformer.eval(), "vae": vae.eval(), "scheduler": FlowMatchEulerDiscreteScheduler(shift=5.0),
            "text_encoder": text_encoder.eval(), "tokenizer": qwen_tokenizer(), "text_encoder_2": text_encoder_2.eval(),
            "tokenizer_2": tokenizer_2, "guider": ClassifierFreeGuidance(guidance_scale=6.0),
            "image_encoder": image_encoder.eval(), "feature_extractor": SiglipImageProcessor(size={"height": 32, "width": 32}),
        }  # fmt: skip


def qwen_tokenizer():
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
