"""FramePack (HunyuanVideo 13B, next-section prediction) through HunyuanVideoFramepackPipeline.

One call makes a long clip section by section: each section denoises `latent_window_size` (9)
latent frames with the photo and a packed, compressed history of what is already made as context,
so memory stays that of one section however long the clip. The rules, from the pipeline's code:
- Sampling `inverted_anti_drifting`, the only one FramePackI2V_HY was trained for: sections are
  made from the end of the clip back to its start, the photo always in context, and a last photo
  (`last_image`) takes the place of the history for the first section made, the clip's end, and
  its SigLIP embedding is averaged with the first's.
- Frames: every section adds 4 x 9 = 36 frames (the VAE's 4x temporal compression) and the clip
  one more: 36n + 1 frames, n sections (37, 73, 109, ... 145 for FramePack's default 5 s at 30 fps).
  The pipeline is asked for sections, not frames: it makes ceil(num_frames / 33) of them, so this
  room passes 33 x n for n sections.
- The denoising loop runs once per section with its step index starting over, so steps are
  counted across sections here (out of steps x sections).
- `guidance_scale` is HunyuanVideo's distilled guidance (an embedding, one pass a step); real CFG
  (`true_cfg_scale`) stays off, as in FramePack's demo.
Weights: the transformer is lllyasviel/FramePackI2V_HY, SigLIP and its processor come from
lllyasviel/flux_redux_bfl, the rest (VAE, Llama and CLIP text encoders) from HunyuanVideo, as
diffusers' docs show; `load_pipeline` assembles them from the hub cache. A local folder written by
`save_pretrained` holds the whole pipeline and loads whole.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from ..errors import ModelNotAvailable
from .base import Family

TEMPORAL = 4  # HunyuanVideo's VAE: 4x temporal compression


class FramePack(Family):
    transformer_repo: str = Field(description="the FramePack transformer's hub id")
    image_encoder_repo: str = Field(description="the hub id holding image_encoder/ and feature_extractor/ (SigLIP)")
    latent_window_size: int = Field(ge=1, description="latent frames made per section")
    sampling_type: Literal["inverted_anti_drifting", "vanilla"] = Field(
        description="how sections are ordered: the one the transformer was trained for")

    @model_validator(mode="after")
    def _one_section_is_frame_step(self):
        if self.frame_step != TEMPORAL * self.latent_window_size or self.frame_offset != 1:
            raise ValueError(f"{self.id}: frame_step must be {TEMPORAL} x latent_window_size "
                             f"({TEMPORAL * self.latent_window_size}) and frame_offset 1: each section adds that many")
        return self

    def sections(self, num_frames: int) -> int:
        return max(1, (num_frames - 1) // self.frame_step)

    def load_pipeline(self, location: str, dtype):
        if Path(location).is_dir():  # a save_pretrained folder of the whole pipeline
            return super().load_pipeline(location, dtype)
        from diffusers import HunyuanVideoFramepackTransformer3DModel
        from transformers import SiglipImageProcessor, SiglipVisionModel

        repo = self.transformer_repo  # the one being read, for the error
        try:
            transformer = HunyuanVideoFramepackTransformer3DModel.from_pretrained(repo, dtype=dtype)
            repo = self.image_encoder_repo
            feature_extractor = SiglipImageProcessor.from_pretrained(repo, subfolder="feature_extractor")
            image_encoder = SiglipVisionModel.from_pretrained(repo, subfolder="image_encoder", dtype=dtype)
            repo = location
            return self.pipeline_class().from_pretrained(location, transformer=transformer, image_encoder=image_encoder,
                                                         feature_extractor=feature_extractor, dtype=dtype)  # fmt: skip
        except OSError:
            repos = ", ".join([self.transformer_repo, self.image_encoder_repo, location])
            raise ModelNotAvailable("model.parts_missing", family=self.id, label=self.label, missing=repo,
                                    repos=repos) from None  # fmt: skip

    def section_frames(self, pipe) -> int:
        """The frames of one section, as the pipeline counts them."""
        return (self.latent_window_size - 1) * pipe.vae_scale_factor_temporal + 1

    def call_kwargs(self, pipe, knobs, photo, last_photo, keyframes=()) -> dict:
        kwargs = super().call_kwargs(pipe, knobs, photo, last_photo, keyframes)
        kwargs.update(num_frames=self.sections(knobs.num_frames) * self.section_frames(pipe),
                      latent_window_size=self.latent_window_size, sampling_type=self.sampling_type)  # fmt: skip
        return kwargs

    def watch_steps(self, pipe, kwargs, watch, after: int = 0):
        sections = -(-kwargs["num_frames"] // self.section_frames(pipe))  # each section's steps count from 0
        return self.count_steps_across(kwargs, watch, kwargs["num_inference_steps"] * sections)

    def tiny_components(self) -> dict:
        import torch
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
        )

        from ..tiny import clip_tokenizer

        torch.manual_seed(0)
        transformer = HunyuanVideoFramepackTransformer3DModel(
            in_channels=4, out_channels=4, num_attention_heads=2, attention_head_dim=10, num_layers=1,
            num_single_layers=1, num_refiner_layers=1, patch_size=2, patch_size_t=1, guidance_embeds=True,
            text_embed_dim=16, pooled_projection_dim=8, rope_axes_dim=(2, 4, 4), image_condition_type=None,
            has_image_proj=True, image_proj_dim=12, has_clean_x_embedder=True,
        )  # fmt: skip
        torch.manual_seed(0)
        vae = AutoencoderKLHunyuanVideo(
            in_channels=3, out_channels=3, latent_channels=4, down_block_types=("HunyuanVideoDownBlock3D",) * 4,
            up_block_types=("HunyuanVideoUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8), layers_per_block=1,
            act_fn="silu", norm_num_groups=4, scaling_factor=0.476986, spatial_compression_ratio=8,
            temporal_compression_ratio=TEMPORAL, mid_block_add_attention=True,
        )  # fmt: skip
        torch.manual_seed(0)
        text_encoder = LlamaModel(LlamaConfig(
            bos_token_id=0, eos_token_id=2, hidden_size=16, intermediate_size=37, num_attention_heads=4,
            num_hidden_layers=2, pad_token_id=1, vocab_size=len(llama_tokenizer()),
        ))  # fmt: skip
        tokenizer_2 = clip_tokenizer()
        torch.manual_seed(0)
        text_encoder_2 = CLIPTextModel(CLIPTextConfig(
            bos_token_id=0, eos_token_id=1, hidden_size=8, intermediate_size=37, num_attention_heads=4,
            num_hidden_layers=2, pad_token_id=1, vocab_size=len(tokenizer_2), projection_dim=8,
        ))  # fmt: skip
        torch.manual_seed(0)
        image_encoder = SiglipVisionModel(SiglipVisionConfig(
            hidden_size=12, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2, image_size=32,
            patch_size=8,
        ))  # fmt: skip
        return {
            "transformer": transformer.eval(), "vae": vae.eval(), "text_encoder": text_encoder.eval(),
            "scheduler": FlowMatchEulerDiscreteScheduler(shift=7.0), "tokenizer": llama_tokenizer(),
            "text_encoder_2": text_encoder_2.eval(), "tokenizer_2": tokenizer_2, "image_encoder": image_encoder.eval(),
            "feature_extractor": SiglipImageProcessor(size={"height": 32, "width": 32}),
        }  # fmt: skip


def llama_tokenizer():
    """A character-level Llama tokenizer (no merges) with Llama 3's header tokens, which the
    pipeline's prompt template uses, as single tokens."""
    from transformers import LlamaTokenizer

    pieces = ["<unk>", "<pad>", "</s>", "<s>", "▁"] + ["▁" + c for c in string.ascii_lowercase]
    pieces += list(string.ascii_letters + string.digits + string.punctuation)
    tokenizer = LlamaTokenizer(vocab={p: i for i, p in enumerate(pieces)}, merges=[], pad_token="<pad>")
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|start_header_id|>", "<|end_header_id|>",
                                                                "<|eot_id|>"]})  # fmt: skip
    return tokenizer
