"""LTX-2 through LTX2ImageToVideoPipeline: the video and its sound made together by one audio-video
transformer (Lightricks' 19B: a 14B video stream and a 5B audio stream that attend to each other),
with Gemma 3 12B as the text encoder. The video VAE is 32x spatial and 8x temporal (8n+1 frames);
the audio comes out of an audio VAE (mel spectrograms) and a vocoder, at the vocoder's
`output_sampling_rate` (24 kHz stereo for LTX-2.0), as long as the frames last at `frame_rate` (a few
hundredths of a second short: its causal audio decoder; the export pads that with silence).

The call follows Lightricks' own one-stage defaults for LTX-2.0 (ltx-pipelines' constants): classifier-
free guidance 3.0 for the video and 7.0 for the sound, spatio-temporal guidance (STG) at block 29,
modality-isolation guidance 3.0 and guidance rescale 0.7 for both; all are data in configs/models.toml,
and a guidance_scale of 1 turns every one of them off.
diffusers' own `__call__` defaults are LTX-2.3's (STG at block 28, cross-modality timesteps), which is
why every one of them is passed here. A transformer with fewer blocks than the one STG names (a tiny
test model) runs without STG, as its log says. The photo goes through H.264 at CRF 33 first, as the
model saw its conditioning frames in training; the pipeline would do it with PyAV, which this project
does not install, so the room does it with the ffmpeg binary it already ships (i2v/export.py).

One call makes the whole clip with its sound: a longer request is refused in the check step (chained
calls would start their sound anew at every join), and a soundtrack is refused too (the model makes
the sound). The published folder's model_index.json names LTX2Pipeline (text- and image-to-video share
it); LTX-2.3 and later ship another vocoder (LTX2VocoderWithBWE, 48 kHz) and other defaults, and are not
claimed here. The latent upsampler and distilled second stage of Lightricks' two-stage recipe are not
used: upscaling this family is post-processing.
"""

from __future__ import annotations

import logging
from typing import ClassVar

from pydantic import Field

from .base import Family

log = logging.getLogger(__name__)

FOLDER_PIPELINES = ("LTX2Pipeline", "LTX2ImageToVideoPipeline")  # a folder of either holds the same components
VOCODER = "LTX2Vocoder"  # LTX-2.0's; LTX-2.3 and 2.5 ship LTX2VocoderWithBWE


class LTX2(Family):
    # No context parallelism: as LTX-Video's (ltx.py), the transformer has a `_cp_plan`, but the
    # image-to-video pipeline's per-token timesteps are not split with the tokens (diffusers 0.42.1).
    context_parallel: ClassVar[bool] = False

    audio_guidance_scale: float = Field(ge=1.0, description="classifier-free guidance of the sound (the video's is "
                                        "guidance_scale); used when the video's guidance is on (above 1)")  # fmt: skip
    stg_scale: float = Field(ge=0.0, description="spatio-temporal guidance, video and sound (0: off)")
    stg_blocks: tuple[int, ...] = Field(description="the transformer blocks whose self-attention STG skips")
    modality_scale: float = Field(ge=1.0, description="modality-isolation guidance, video and sound (1: off)")
    guidance_rescale: float = Field(ge=0.0, le=1.0, description="guidance rescale, video and sound (0: off)")
    cross_timestep: bool = Field(description="diffusers' use_cross_timestep: false is LTX-2.0's own conditioning")
    image_crf: int = Field(ge=0, le=51, description="the photo is compressed by H.264 at this CRF first (0: not)")

    def call_kwargs(self, pipe, knobs, photo, last_photo, keyframes=()) -> dict:
        import numpy as np
        from PIL import Image

        from ..export import h264_round_trip

        if self.image_crf:  # as the pipeline would with PyAV (image_crf=None), through our own ffmpeg
            try:
                photo = Image.fromarray(h264_round_trip(np.asarray(photo.convert("RGB")), self.image_crf))
            except (ImportError, RuntimeError, OSError) as exc:  # imageio-ffmpeg absent: benches on a bare GPU machine
                log.warning("%s: no ffmpeg to compress the photo at CRF %d as in training (%s): it goes in as it is",
                            self.id, self.image_crf, exc)  # fmt: skip
        kwargs = super().call_kwargs(pipe, knobs, photo, last_photo, keyframes)
        # Guidance off (guidance_scale 1, as for distilled weights): every kind of it, the sound's too
        # (its CFG alone would still run the unconditional pass), and no extra STG or modality passes.
        guided = knobs.guidance_scale > 1.0
        layers = pipe.transformer.config.num_layers
        blocks = [block for block in self.stg_blocks if block < layers] if guided else []
        stg = self.stg_scale if blocks else 0.0
        if guided and self.stg_scale and not blocks:
            log.info("%s: the transformer has %d blocks, none of STG's %s: no spatio-temporal guidance", self.id,
                     layers, list(self.stg_blocks))  # fmt: skip
        modality = self.modality_scale if guided else 1.0
        kwargs.update(
            frame_rate=float(knobs.fps), image_crf=0,
            audio_guidance_scale=self.audio_guidance_scale if guided else 1.0,
            stg_scale=stg, audio_stg_scale=stg, spatio_temporal_guidance_blocks=blocks or None,
            modality_scale=modality, audio_modality_scale=modality,
            guidance_rescale=self.guidance_rescale if guided else 0.0,
            audio_guidance_rescale=self.guidance_rescale if guided else 0.0,
            use_cross_timestep=self.cross_timestep,
        )  # fmt: skip
        return kwargs

    def sound(self, pipe, output):
        from ..audio import Audio

        samples = output.audio[0].float().cpu().numpy()  # (channels, n) in [-1, 1]: the vocoder ends in tanh
        return Audio(samples, int(pipe.vocoder.config.output_sampling_rate))

    def claims(self, index: dict, folder) -> bool:
        vocoder = index.get("vocoder") or [None, None]
        return index.get("_class_name") in FOLDER_PIPELINES and vocoder[-1] == VOCODER

    def tiny_components(self) -> dict:
        """diffusers' own test components (tests/pipelines/ltx2/test_ltx2_image2video.py), with a
        tiny Gemma 3 built here instead of hf-internal-testing/tiny-gemma3 from the hub, and a vocoder
        that upsamples each mel frame by the audio VAE's hop (160 = 8 x 5 x 4, where the test's makes 4),
        so that its sound lasts as long as the frames, as the real one's does."""
        import torch
        from diffusers import (
            AutoencoderKLLTX2Audio,
            AutoencoderKLLTX2Video,
            FlowMatchEulerDiscreteScheduler,
            LTX2VideoTransformer3DModel,
        )
        from diffusers.pipelines.ltx2 import LTX2TextConnectors
        from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder

        tokenizer, text_encoder = _tiny_gemma3()
        hidden, layers = text_encoder.config.text_config.hidden_size, text_encoder.config.text_config.num_hidden_layers
        torch.manual_seed(0)
        transformer = LTX2VideoTransformer3DModel(
            in_channels=4, out_channels=4, patch_size=1, patch_size_t=1, num_attention_heads=2, attention_head_dim=8,
            cross_attention_dim=16, audio_in_channels=4, audio_out_channels=4, audio_num_attention_heads=2,
            audio_attention_head_dim=4, audio_cross_attention_dim=8, num_layers=2, qk_norm="rms_norm_across_heads",
            caption_channels=hidden, rope_double_precision=False, rope_type="split",
        )  # fmt: skip
        torch.manual_seed(0)
        connectors = LTX2TextConnectors(
            caption_channels=hidden, text_proj_in_factor=layers + 1, video_connector_num_attention_heads=2,
            video_connector_attention_head_dim=8, video_connector_num_layers=1,
            video_connector_num_learnable_registers=None, audio_connector_num_attention_heads=2,
            audio_connector_attention_head_dim=8, audio_connector_num_layers=1,
            audio_connector_num_learnable_registers=None, connector_rope_base_seq_len=32, rope_theta=10000.0,
            rope_double_precision=False, causal_temporal_positioning=False, rope_type="split",
        )  # fmt: skip
        torch.manual_seed(0)
        vae = AutoencoderKLLTX2Video(
            in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8,), decoder_block_out_channels=(8,),
            layers_per_block=(1,), decoder_layers_per_block=(1, 1), spatio_temporal_scaling=(True,),
            decoder_spatio_temporal_scaling=(True,), decoder_inject_noise=(False, False), downsample_type=("spatial",),
            upsample_residual=(False,), upsample_factor=(1,), timestep_conditioning=False, patch_size=1, patch_size_t=1,
            encoder_causal=True, decoder_causal=False,
        )  # fmt: skip
        torch.manual_seed(0)
        audio_vae = AutoencoderKLLTX2Audio(
            base_channels=4, output_channels=2, ch_mult=(1,), num_res_blocks=1, attn_resolutions=None, in_channels=2,
            resolution=32, latent_channels=2, norm_type="pixel", causality_axis="height", dropout=0.0,
            mid_block_add_attention=False, sample_rate=16000, mel_hop_length=160, is_causal=True, mel_bins=8,
        )  # fmt: skip
        torch.manual_seed(0)
        vocoder = LTX2Vocoder(
            in_channels=audio_vae.config.output_channels * audio_vae.config.mel_bins, hidden_channels=32,
            out_channels=2, upsample_kernel_sizes=[16, 10, 8], upsample_factors=[8, 5, 4], resnet_kernel_sizes=[3],
            resnet_dilations=[[1, 3, 5]], leaky_relu_negative_slope=0.1, output_sampling_rate=16000,
        )  # fmt: skip
        return {"transformer": transformer, "vae": vae, "audio_vae": audio_vae,
                "scheduler": FlowMatchEulerDiscreteScheduler(), "text_encoder": text_encoder, "tokenizer": tokenizer,
                "connectors": connectors, "vocoder": vocoder, "processor": None, "prompt_enhancer": None,
                "duration_head": None}  # fmt: skip


def gemma_tokenizer():
    """A Gemma tokenizer of one token per character (and Gemma's special tokens), built in memory:
    enough for a tiny model, and for benchmarks, as the pipeline pads every prompt to 1024 tokens."""
    import string

    from transformers import GemmaTokenizer

    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_image>", "<end_of_image>",
                "<image_soft_token>"]  # fmt: skip
    tokens = specials + ["▁"] + list(string.ascii_letters + string.digits + string.punctuation)
    return GemmaTokenizer(vocab={token: index for index, token in enumerate(tokens)}, merges=[])


def _tiny_gemma3():
    """`gemma_tokenizer` and a Gemma 3 of two text layers of 16 and one tiny SigLIP layer (the
    pipeline reads only the text layers' hidden states)."""
    import torch
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    tokenizer = gemma_tokenizer()
    vocab = tokenizer.get_vocab()
    torch.manual_seed(0)
    config = Gemma3Config(
        text_config=dict(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=8, sliding_window=64,
                         max_position_embeddings=1024, pad_token_id=0, eos_token_id=1, bos_token_id=2),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=8, patch_size=4),
        mm_tokens_per_image=4, boi_token_index=vocab["<start_of_image>"], eoi_token_index=vocab["<end_of_image>"],
        image_token_index=vocab["<image_soft_token>"],
    )  # fmt: skip
    return tokenizer, Gemma3ForConditionalGeneration(config)
