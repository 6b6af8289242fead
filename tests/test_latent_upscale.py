"""Upscale 2 in latent space for LTX-Video 0.9.5+ (ltx-video-condition): its tiny model and a tiny
LTXLatentUpsamplerModel, through the engine. The first pass ends in latents, the upsampler doubles
them, a second pass at twice the size makes the frames; without the upsampler's weights, and for
x4, upscaling stays post-processing and the result says why."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch
from diffusers.pipelines.ltx.modeling_latent_upsampler import LTXLatentUpsamplerModel

from i2v.checks import check
from i2v.engine import LATENT_UPSAMPLER, VideoEngine
from i2v.errors import Cancelled
from i2v.export import read_mp4
from i2v.families import all_families, get_family
from i2v.request import GenerationRequest
from i2v.tiny import make_tiny_latent_upsampler
from messages import catalogue, placeholders, render

LTX = "ltx-video-condition"
REPO = "Lightricks/ltxv-spatial-upscaler-0.9.7"
IDS = ("post.latent_upscaling", "post.latent_missing", "post.latent_x2_only", "post.latent_load_failed")

# The published upsampler at full size, for building it with random weights on a GPU (bench):
# LTXLatentUpsamplerModel(**FULL_SIZE). From diffusers' scripts/convert_ltx_to_diffusers.py,
# get_spatial_latent_upsampler_config("0.9.7") (and "0.9.8", the same), which converts
# ltxv-spatial-upscaler-0.9.7.safetensors; it is also LTXLatentUpsamplerModel's defaults.
FULL_SIZE = dict(in_channels=128, mid_channels=512, num_blocks_per_stage=4, dims=3, spatial_upsample=True,
                 temporal_upsample=False)  # fmt: skip


def tiny_request(photo, model, **overrides) -> GenerationRequest:
    # fps None: the model's own, so the frames made are the file's (another fps retimes them)
    fields = dict(image=photo, prompt="a cat slowly turns its head", negative_prompt="blurry", model=str(model),
                  height=32, width=32, num_frames=9, fps=None, num_inference_steps=2, seed=7, upscale=2)  # fmt: skip
    return GenerationRequest(**{**fields, **overrides})


@pytest.fixture(scope="session")
def upscalers(tmp_path_factory):
    """An upscaler folder holding a tiny latent upsampler for the tiny LTX-Video 0.9.5 VAE."""
    folder = tmp_path_factory.mktemp("upscalers")
    make_tiny_latent_upsampler(LTX, folder / "ltxv-spatial-upscaler")
    return folder


@pytest.fixture
def engine(tmp_path, upscalers):
    return VideoEngine(tmp_path / "outputs", device="cpu", upscaler_dir=upscalers)


@pytest.fixture
def upsampled(monkeypatch):
    """(latents in, latents out) shapes of every run of a latent upsampler."""
    seen = []
    forward = LTXLatentUpsamplerModel.forward

    def spy(self, hidden_states):
        out = forward(self, hidden_states)
        seen.append((tuple(hidden_states.shape), tuple(out.shape)))
        return out

    monkeypatch.setattr(LTXLatentUpsamplerModel, "forward", spy)
    return seen


def codes(result) -> list[str]:
    return [said.code for said in result.adjustments]


# ---------------------------------------------------------------------- which families
def test_only_the_family_whose_vae_the_upsampler_fits_names_it():
    named = {family.id: family.latent_upscaler for family in all_families().values() if family.latent_upscaler}
    assert named == {LTX: REPO}  # ltx-video's 0.9.0 VAE is another latent space
    family = get_family(LTX)
    assert (family.upscale_num_inference_steps, family.upscale_denoise_strength) == (10, 0.4)  # diffusers' docs
    assert family.latent_upscale_steps() == 4  # "effectively, 4 inference steps out of 10"
    older = get_family("ltx-video")
    with pytest.raises(ValueError, match="its room has no render_latent_upscaled"):
        type(older)(**{**older.model_dump(), "latent_upscaler": REPO})


def test_full_size_upsampler_is_the_published_one():
    with torch.device("meta"):
        model = LTXLatentUpsamplerModel(**FULL_SIZE)
    params = sum(p.numel() for p in model.parameters())
    assert model.config.in_channels == 128  # LTX-Video 0.9.5+'s latent channels
    assert abs(params * 4 / 1e6 - 505) < 5  # ltxv-spatial-upscaler-0.9.7.safetensors: 505 MB of float32


def test_an_upsampler_folder_counts_only_when_it_fits(tmp_path):
    family = get_family(LTX)

    def folder(name, weights=True, **config):
        path = tmp_path / name
        path.mkdir(parents=True)
        (path / "config.json").write_text(json.dumps({"_class_name": "LTXLatentUpsamplerModel", **config}))
        if weights:
            (path / "diffusion_pytorch_model.safetensors").write_bytes(b"")
        return path

    folder("a-temporal", spatial_upsample=False, temporal_upsample=True)  # the temporal upscaler: another job
    folder("b-other-latents", in_channels=16)
    folder("c-no-weights", weights=False, in_channels=8)
    assert family.latent_upsampler_folder(tmp_path, 8) is None
    right = folder("d-pipeline/latent_upsampler", in_channels=8)  # a copied LTXLatentUpsamplePipeline folder
    assert family.latent_upsampler_folder(tmp_path, 8) == right
    assert family.latent_upsampler_folder(tmp_path, None) == tmp_path / "b-other-latents"  # channels unknown
    assert get_family("ltx-video").latent_upsampler_folder(tmp_path, 8) is None  # a family without one


# ---------------------------------------------------------------------- through the engine
def test_upscale_2_is_made_in_latent_space(engine, tiny_models, chelsea, upsampled, monkeypatch):
    family = type(get_family(LTX))
    sizes = []
    call_kwargs = family.call_kwargs

    def spy_kwargs(self, pipe, knobs, photo, last_photo, keyframes=()):
        sizes.append((knobs.width, knobs.height, photo.size))
        return call_kwargs(self, pipe, knobs, photo, last_photo, keyframes)

    monkeypatch.setattr(family, "call_kwargs", spy_kwargs)
    steps = []
    result = engine.generate(tiny_request(chelsea, tiny_models[LTX]), on_progress=steps.append)

    video, meta = read_mp4(result.path)
    assert video.shape == (9, 64, 64, 3) and meta["size"] == (64, 64) and (result.width, result.height) == (64, 64)
    data = json.loads(result.metadata_path.read_text())
    assert result.upscaler == data["upscaler"] == LATENT_UPSAMPLER == "ltx_latent_upsampler"
    assert "post.latent_upscaling" in codes(result) and "post.lanczos_only" not in codes(result)
    assert any("upscaled 2x with ltx_latent_upsampler: 64x64" in str(said) for said in result.adjustments)
    assert upsampled == [((1, 8, 2, 1, 1), (1, 8, 2, 2, 2))]  # the latents, doubled in height and width
    assert sizes == [(32, 32, (32, 32)), (64, 64, (64, 64))]  # the second pass: its photo fitted at twice the size
    denoising = [(p.step, p.total) for p in steps if p.stage == "denoising"]
    assert denoising == [(step, 6) for step in range(1, 7)]  # 2 steps, then the second pass's 4
    assert not [p for p in steps if p.stage == "upscaling"]  # nothing left for post-processing

    kept = engine._upsampler
    assert kept is not None
    engine.generate(tiny_request(chelsea, tiny_models[LTX], seed=8))
    assert engine._upsampler is kept  # loaded once, beside the pipeline
    engine.unload()
    assert engine._upsampler is None


def test_the_hub_cache_copy_is_used(tmp_path, tiny_models, chelsea, upscalers, upsampled):
    from huggingface_hub import constants

    snapshot = tmp_path / "hf-home" / "hub" / f"models--{REPO.replace('/', '--')}"
    (snapshot / "refs").mkdir(parents=True)
    (snapshot / "refs" / "main").write_text("0" * 40)
    assert constants.HF_HUB_CACHE == str(tmp_path / "hf-home" / "hub")
    (snapshot / "snapshots" / ("0" * 40)).mkdir(parents=True)  # laid out as LTXLatentUpsamplePipeline is
    (snapshot / "snapshots" / ("0" * 40) / "latent_upsampler").symlink_to(upscalers / "ltxv-spatial-upscaler")

    result = VideoEngine(tmp_path / "outputs", device="cpu").generate(tiny_request(chelsea, tiny_models[LTX]))
    assert (result.width, result.height, result.upscaler) == (64, 64, LATENT_UPSAMPLER) and len(upsampled) == 1


def test_without_its_weights_upscale_2_is_post_processing_and_says_how_to_fetch_them(tmp_path, tiny_models,
                                                                                     chelsea, upsampled):  # fmt: skip
    result = VideoEngine(tmp_path / "outputs", device="cpu").generate(tiny_request(chelsea, tiny_models[LTX]))
    assert read_mp4(result.path)[0].shape == (9, 64, 64, 3)
    assert result.upscaler == "lanczos" and not upsampled
    missing = next(said for said in result.adjustments if said.code == "post.latent_missing")
    assert f"`hf download {REPO}`" in render(missing, "en") and "upscaler folder" in render(missing, "en")
    assert f"`hf download {REPO}`" in render(missing, "zh") and "放大" in render(missing, "zh")
    assert "post.lanczos_only" in codes(result)


def test_every_message_has_both_languages_with_the_same_parameters():
    en, zh = catalogue("en"), catalogue("zh")
    for code in IDS:
        assert code in en and code in zh, code
        assert placeholders(en[code]) == placeholders(zh[code]), code
        assert en[code] != zh[code]


def test_x4_is_post_processing(engine, tiny_models, chelsea, upsampled):
    result = engine.generate(tiny_request(chelsea, tiny_models[LTX], upscale=4))
    assert (result.width, result.height, result.upscaler) == (128, 128, "lanczos") and not upsampled
    x4 = next(said for said in result.adjustments if said.code == "post.latent_x2_only")
    assert "makes 2x only: 4x is upscaled by post-processing" in render(x4)


def test_ltx_video_keeps_post_processing(engine, tiny_models, chelsea):
    checked = check(tiny_request(chelsea, tiny_models["ltx-video"]))
    assert engine.choose_upscaler(checked) is checked  # its VAE is not the upsampler's: nothing to choose


def test_a_chain_upscales_every_segment_in_latent_space(engine, tiny_models, chelsea, upsampled, caplog):
    steps = []
    request = tiny_request(chelsea, tiny_models[LTX], prompt="", segments=["a cat looks up", "it turns"])
    result = engine.generate(request, on_progress=steps.append)
    video = read_mp4(result.path)[0]
    assert video.shape == (9 + 8, 64, 64, 3) and result.upscaler == LATENT_UPSAMPLER
    assert len(upsampled) == 2 and "was made at" not in caplog.text
    denoising = [(p.segment, p.step, p.total) for p in steps if p.stage == "denoising"]
    assert denoising[5] == (1, 6, 6) and denoising[-1] == (2, 6, 6)


def test_stop_during_the_second_pass_leaves_no_file(engine, tiny_models, chelsea, upsampled):
    cancel = threading.Event()

    def on_progress(progress):
        if progress.stage == "denoising" and progress.step == 4:  # the second pass's second step
            cancel.set()

    with pytest.raises(Cancelled):
        engine.generate(tiny_request(chelsea, tiny_models[LTX]), on_progress=on_progress, cancel=cancel)
    assert len(upsampled) == 1  # it got as far as the upsampled latents
    assert not [path for path in engine.output_dir.rglob("*") if path.is_file()]
    again = engine.generate(tiny_request(chelsea, tiny_models[LTX]))  # the engine is whole afterwards
    assert np.asarray(read_mp4(again.path)[0]).shape == (9, 64, 64, 3)


def test_a_stopped_chain_keeps_its_segments_at_twice_the_size(engine, tiny_models, chelsea):
    cancel = threading.Event()

    def on_progress(progress):
        if progress.segment == 2 and progress.stage == "denoising" and progress.step == 4:
            cancel.set()

    request = tiny_request(chelsea, tiny_models[LTX], prompt="", segments=["a", "b", "c"], keep_segments=True)
    kept = engine.generate(request, on_progress=on_progress, cancel=cancel)
    assert read_mp4(kept.path)[0].shape == (9, 64, 64, 3)
    assert (kept.width, kept.height, kept.upscaler) == (64, 64, LATENT_UPSAMPLER)
    assert "post.skipped_stopped" not in codes(kept)  # nothing was left for post-processing
