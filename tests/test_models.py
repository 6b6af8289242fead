"""Model families as data, and naming a model by family id or by local folder."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from i2v.errors import InvalidInput
from i2v.families import FAMILY_MARKER, Family, load_families, resolve


def test_families_have_sane_defaults():
    for family in load_families().values():
        assert family.height % family.size_multiple == 0 and family.width % family.size_multiple == 0, family.id
        assert (family.num_frames - family.frame_offset) % family.frame_step == 0, family.id
        assert family.num_frames <= family.max_frames, family.id
        assert family.pipeline_class().__name__ == family.pipeline


def test_unknown_keys_are_errors():
    entry = load_families()["ltx-video"].model_dump()
    with pytest.raises(ValidationError, match="extra"):
        Family(**{**entry, "num_frame": 9})


def test_family_id_means_hub_id():
    source = resolve("svd-xt")
    assert not source.local and source.location == "stabilityai/stable-video-diffusion-img2vid-xt"


@pytest.mark.parametrize(
    "family_id",
    ["wan2.1-i2v-14b-480p", "wan2.2-i2v-a14b", "wan2.2-ti2v-5b", "ltx-video", "hunyuanvideo-i2v", "svd-xt",
     "wan2.1-flf2v-14b-720p", "ltx-video-condition", "framepack", "skyreels-v2-df-1.3b-540p",
     "skyreels-v2-df-14b-540p"],
)
def test_family_is_read_from_a_folder_even_without_our_marker(tiny_models, tmp_path, family_id):
    folder = tiny_models[family_id]
    assert resolve(str(folder)).family.id == family_id
    # A folder from elsewhere has no marker: the family comes from the pipeline class and its parts.
    index = json.loads((folder / "model_index.json").read_text())
    index.pop(FAMILY_MARKER)
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "model_index.json").write_text(json.dumps(index))
    for part in ("transformer", "transformer_2"):
        if (folder / part).exists():
            (bare / part).symlink_to(folder / part)
    assert resolve(str(bare)).family.id == family_id


def test_folder_of_another_pipeline_is_refused(tmp_path):
    (tmp_path / "sd").mkdir()
    (tmp_path / "sd" / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    with pytest.raises(InvalidInput, match="StableDiffusionPipeline, which is no supported image-to-video pipeline"):
        resolve(str(tmp_path / "sd"))
