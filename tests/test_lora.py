"""LoRAs on every family that takes them, with tiny LoRAs made here: they change the frames, weight
0 leaves them as without, two combine, a LoRA made for another model is a clean error and the
pipeline stays usable, and the result and the MP4's metadata list them."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from i2v import lora
from i2v.engine import VideoEngine
from i2v.errors import InvalidInput
from i2v.export import read_comment
from i2v.request import GenerationRequest, LoraChoice
from i2v.tiny import make_tiny_lora

TAKE_LORAS = ["wan2.1-i2v-14b-480p", "wan2.2-i2v-a14b", "ltx-video", "cogvideox-5b-i2v"]
REFUSE = ["hunyuanvideo-i2v", "svd-xt", "i2vgen-xl", "camera"]


def request(photo, model, **overrides) -> GenerationRequest:
    fields = dict(image=photo, prompt="a cat turns its head", model=str(model), height=32, width=32, num_frames=9,
                  fps=8, num_inference_steps=2, seed=3)  # fmt: skip
    return GenerationRequest(**{**fields, **overrides})


def frames(engine, photo, model, loras):
    from i2v.checks import check

    checked = engine.choose_levers(engine.choose_strategy(check(request(photo, model, loras=loras))))
    return np.asarray(engine.render(checked), dtype=np.float32)


@pytest.fixture
def engine(tmp_path):
    torch.set_num_threads(1)
    return VideoEngine(tmp_path / "out", device="cpu")


@pytest.mark.parametrize("family_id", TAKE_LORAS)
def test_a_lora_changes_the_frames_weight_zero_does_not_and_two_combine(family_id, engine, tiny_models, chelsea,
                                                                         tmp_path):  # fmt: skip
    model = tiny_models[family_id]
    first = make_tiny_lora(family_id, tmp_path / "first.safetensors", seed=1)
    second = make_tiny_lora(family_id, tmp_path / "second.safetensors", seed=2)
    base = frames(engine, chelsea, model, [])
    with_first = frames(engine, chelsea, model, [LoraChoice(source=str(first))])
    at_zero = frames(engine, chelsea, model, [LoraChoice(source=str(first), weight=0.0)])
    both = frames(engine, chelsea, model, [LoraChoice(source=str(first)), LoraChoice(source=str(second))])
    again = frames(engine, chelsea, model, [])
    assert np.abs(with_first - base).max() > 0.01
    np.testing.assert_array_equal(at_zero, base)
    assert np.abs(both - with_first).max() > 0.01 and np.abs(both - base).max() > 0.01
    np.testing.assert_array_equal(again, base)  # dropping the LoRAs gives the plain model back
    assert lora.loaded(engine._pipe) == {}


def test_switching_loras_does_not_reload_the_model(engine, tiny_models, chelsea, tmp_path):
    model = tiny_models["ltx-video"]
    first = make_tiny_lora("ltx-video", tmp_path / "first.safetensors", seed=1)
    second = make_tiny_lora("ltx-video", tmp_path / "second.safetensors", seed=2)
    frames(engine, chelsea, model, [LoraChoice(source=str(first))])
    pipe = engine._pipe
    frames(engine, chelsea, model, [LoraChoice(source=str(second), weight=0.5)])
    frames(engine, chelsea, model, [])
    assert engine._pipe is pipe


def test_the_original_wan_format_loads_like_the_diffusers_one(engine, tiny_models, chelsea, tmp_path):
    model = tiny_models["wan2.1-i2v-14b-480p"]
    peft = make_tiny_lora("wan2.1-i2v-14b-480p", tmp_path / "peft.safetensors", seed=1)
    original = make_tiny_lora("wan2.1-i2v-14b-480p", tmp_path / "kohya.safetensors", seed=1, style="wan-original")
    keys = json.loads(subprocess.run([sys.executable, "-c", "import json,sys; from safetensors import safe_open; "
                                      "print(json.dumps(list(safe_open(sys.argv[1], 'pt').keys())))", str(original)],
                                     capture_output=True, text=True, check=True).stdout)  # fmt: skip
    assert any(k.startswith("diffusion_model.blocks.0.self_attn.q.lora_down") for k in keys)
    assert any(k.endswith(".alpha") for k in keys)
    base = frames(engine, chelsea, model, [])
    a = frames(engine, chelsea, model, [LoraChoice(source=str(peft))])
    b = frames(engine, chelsea, model, [LoraChoice(source=str(original))])
    assert np.abs(b - base).max() > 0.01
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_wan22_a14b_takes_a_weight_for_each_expert(engine, tiny_models, chelsea, tmp_path):
    model = tiny_models["wan2.2-i2v-a14b"]
    file = make_tiny_lora("wan2.2-i2v-a14b", tmp_path / "both.safetensors", seed=1)
    base = frames(engine, chelsea, model, [])
    both = frames(engine, chelsea, model, [LoraChoice(source=str(file))])
    first_only = frames(engine, chelsea, model, [LoraChoice(source=str(file), weight=1.0, weight_2=0.0)])
    assert lora.loaded(engine._pipe)[lora.adapter_name(file)] == ("transformer", "transformer_2")
    assert np.abs(first_only - base).max() > 0.01 and np.abs(first_only - both).max() > 0.01


@pytest.mark.parametrize("made_for", ["ltx-video", "shape"])
def test_a_lora_for_another_model_is_one_clean_error_and_the_next_run_works(made_for, engine, tiny_models, chelsea,
                                                                           tmp_path):  # fmt: skip
    from safetensors.torch import save_file

    model = tiny_models["wan2.1-i2v-14b-480p"]
    if made_for == "shape":  # the right layer names, another model's sizes (a Wan 1.3B LoRA on the 14B, say)
        wrong = tmp_path / "other-size.safetensors"
        save_file({"transformer.blocks.0.attn1.to_q.lora_A.weight": torch.randn(4, 7),
                   "transformer.blocks.0.attn1.to_q.lora_B.weight": torch.randn(7, 4)}, str(wrong))  # fmt: skip
    else:
        wrong = make_tiny_lora(made_for, tmp_path / "ltx.safetensors", seed=1)
    base = frames(engine, chelsea, model, [])
    pipe = engine._pipe
    with pytest.raises(InvalidInput) as caught:
        frames(engine, chelsea, model, [LoraChoice(source=str(wrong))])
    assert str(caught.value) == f"LoRA {wrong.name} does not fit wan2.1-i2v-14b-480p: it was made for another model"
    assert "\n" not in str(caught.value)
    assert engine._pipe is pipe and lora.loaded(pipe) == {}
    np.testing.assert_array_equal(frames(engine, chelsea, model, []), base)


@pytest.mark.parametrize("family_id", REFUSE)
def test_families_without_a_lora_loader_refuse_a_lora(family_id, engine, tiny_models, chelsea, tmp_path):
    file = make_tiny_lora("ltx-video", tmp_path / "style.safetensors")
    model = "camera" if family_id == "camera" else tiny_models[family_id]
    with pytest.raises(InvalidInput, match=f"takes no LoRAs .*remove style.safetensors"):
        engine.generate(request(chelsea, model, loras=[LoraChoice(source=str(file))]))
    assert not (engine.output_dir.exists() and any(engine.output_dir.glob("*.mp4")))


def test_the_result_and_the_metadata_list_the_loras(engine, tiny_models, chelsea, tmp_path):
    folder = tmp_path / "loras"
    file = make_tiny_lora("ltx-video", folder / "glow.safetensors", seed=1)
    engine.lora_dir = folder
    result = engine.generate(request(chelsea, tiny_models["ltx-video"], loras=[LoraChoice(source="glow.safetensors",
                                                                                        weight=0.7)]))  # fmt: skip
    assert [(c.name, c.weight) for c in result.loras] == [("glow.safetensors", 0.7)]
    sidecar = json.loads(result.metadata_path.read_text())
    assert sidecar["loras"] == [{"file": "glow.safetensors", "weight": 0.7, "weight_2": None}]
    comment = read_comment(result.path)
    assert comment["loras"] == sidecar["loras"]
    assert str(folder) not in result.metadata_path.read_text() and str(folder) not in json.dumps(comment)


def test_missing_files_and_bad_specs_are_said_plainly(engine, tiny_models, chelsea, tmp_path):
    model = tiny_models["ltx-video"]
    with pytest.raises(InvalidInput, match="LoRA nowhere.safetensors does not exist"):
        engine.generate(request(chelsea, model, loras=[LoraChoice(source=str(tmp_path / "nowhere.safetensors"))]))
    with pytest.raises(InvalidInput, match="only .safetensors"):
        engine.generate(request(chelsea, model, loras=[LoraChoice(source=str(tmp_path / "a.ckpt"))]))
    with pytest.raises(Exception, match="hf download some/repo style.safetensors"):
        engine.generate(request(chelsea, model, loras=[LoraChoice(source="some/repo::style.safetensors")]))
    assert not any(engine.output_dir.glob("*.mp4"))


@pytest.mark.parametrize(("spec", "expected"), [
    ("style.safetensors", ("style.safetensors", 1.0, None)),
    ("/loras/style.safetensors:0.6", ("/loras/style.safetensors", 0.6, None)),
    ("style.safetensors:1:0.5", ("style.safetensors", 1.0, 0.5)),
    ("lightx2v/Wan2.1-Distill-Loras::wan.safetensors:0.8", ("lightx2v/Wan2.1-Distill-Loras::wan.safetensors", 0.8, None)),
    ("org/repo::f.safetensors", ("org/repo::f.safetensors", 1.0, None)),
])  # fmt: skip
def test_lora_specs_parse(spec, expected):
    choice = lora.parse(spec)
    assert (choice.source, choice.weight, choice.weight_2) == expected


@pytest.mark.parametrize("spec", ["", ":0.5", "style.safetensors:9"])
def test_bad_lora_specs_are_refused(spec):
    with pytest.raises(InvalidInput, match="is not FILE"):
        lora.parse(spec)


def test_a_refused_lora_leaves_the_adapters_of_the_last_run_as_they_were(engine, tiny_models, chelsea, tmp_path):
    # Review finding: a refusal used to leave a LoRA active but unlisted, or listed but gone.
    model = tiny_models["ltx-video"]
    a = make_tiny_lora("ltx-video", tmp_path / "a.safetensors", seed=1)
    b = make_tiny_lora("ltx-video", tmp_path / "b.safetensors", seed=2)
    wrong = make_tiny_lora("wan2.1-i2v-14b-480p", tmp_path / "wan.safetensors", seed=3)
    base = frames(engine, chelsea, model, [])
    with_a = frames(engine, chelsea, model, [LoraChoice(source=str(a))])
    with pytest.raises(InvalidInput):
        frames(engine, chelsea, model, [LoraChoice(source=str(wrong))])
    np.testing.assert_array_equal(frames(engine, chelsea, model, [LoraChoice(source=str(a))]), with_a)
    with pytest.raises(InvalidInput):
        frames(engine, chelsea, model, [LoraChoice(source=str(b)), LoraChoice(source=str(wrong))])
    assert set(lora.loaded(engine._pipe)) == {lora.adapter_name(a)}  # b was loaded by the refused call: gone
    np.testing.assert_array_equal(frames(engine, chelsea, model, []), base)


def test_the_same_lora_twice_is_refused(engine, tiny_models, chelsea, tmp_path):
    a = make_tiny_lora("ltx-video", tmp_path / "a.safetensors", seed=1)
    with pytest.raises(InvalidInput, match="a.safetensors is asked for twice"):
        engine.generate(request(chelsea, tiny_models["ltx-video"],
                                loras=[LoraChoice(source=str(a)), LoraChoice(source=str(a), weight=0.5)]))  # fmt: skip


def test_one_file_under_two_spellings_is_refused(engine, tiny_models, chelsea, tmp_path):
    folder = tmp_path / "loras"
    a = make_tiny_lora("ltx-video", folder / "a.safetensors", seed=1)
    engine.lora_dir = folder
    with pytest.raises(InvalidInput, match="a.safetensors is asked for twice"):
        engine.generate(request(chelsea, tiny_models["ltx-video"],
                                loras=[LoraChoice(source="a.safetensors"), LoraChoice(source=str(a), weight=0.5)]))  # fmt: skip
