"""Issue 15 through the REST API, against a real server process (`python app.py` around a tiny Wan
VACE model, on the CPU, its refiner the faulty fake LLM's well-behaved model): the style knobs and fps
round trip on the camera engine and change what they claim (a warm palette is warmer than a cool one,
the template's camera move is rendered, the file has the asked fps); a soundtrack, as a data URL or a
multipart file, comes back as the video's sound at the video's length (decoded back); references come
as uploads (never paths) and reach VACE with their labels, a model without references refuses them,
a label without its file is refused, a file over the limit is a 413 that names it; templates are listed
in the request's language; the refine endpoint answers with the prompt that runs and bounded advice."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from test_api import ALICE, Server, auth, data_url, literal_words, wait_for
from test_service_issue15 import write_clip, write_wav

from api import body_limit
from i2v.export import read_audio, read_comment, read_mp4
from i2v.families import get_family
from i2v.templates import get_template, templates
from prompting.config import bounds


@pytest.fixture(scope="module")
def server(tiny_models, faulty_llm, tmp_path_factory):
    out = tmp_path_factory.mktemp("api15") / "outputs"
    running = Server(str(tiny_models["wan-vace-1.3b"]), out, OPENAI_BASE_URL=faulty_llm.base_url,
                     I2V_LLM_MODEL="ok#d1-api15").start()  # fmt: skip
    yield running
    running.stop()


def post(server, body: dict, language: str = "en") -> httpx.Response:
    return httpx.post(f"{server.url}/api/v1/jobs", json=body, timeout=60,
                      headers={**auth(ALICE), "Accept-Language": language})  # fmt: skip


def camera_job(photo, **fields) -> dict:
    return {"image": data_url(photo), "prompt": "a cat", "model": "camera", "height": 64, "width": 64, "num_frames": 8,
            "fps": 8, "seed": 3, **fields}  # fmt: skip


def done(server, reply: httpx.Response) -> dict:
    assert reply.status_code == 202, reply.text
    job = wait_for(server.url, ALICE, reply.json()["id"])
    assert job["status"] == "done", job
    return job


def download(server, job: dict, name: str):
    path = server.out.parent / name
    path.write_bytes(httpx.get(server.url + job["video_url"], headers=auth(ALICE), timeout=30).content)
    return path


def wav_url(path) -> str:
    return "data:audio/wav;base64," + base64.b64encode(path.read_bytes()).decode()


def test_style_knobs_and_fps_change_what_they_claim_on_the_camera_engine(server, chelsea):
    orbit = get_template("orbit")
    made = {}
    for palette in ("warm", "cool"):
        job = done(server, post(server, camera_job(chelsea, template="orbit", color_palette=palette,
                                                   motion_intensity=0.5, fps=16)))  # fmt: skip
        video = job["result"]["video"]
        assert (video["template"], video["color_palette"], video["motion_intensity"]) == ("orbit", palette, 0.5)
        assert video["camera_motion"] == orbit.camera_motion and video["fps"] == 16
        assert (job["result"]["has_audio"], job["result"]["audio"]) == (False, None)
        made[palette], meta = read_mp4(download(server, job, f"{palette}.mp4"))
        assert meta["fps"] == 16
    warmth = {palette: float(np.mean(frames[..., 0].astype(float) - frames[..., 2])) for palette, frames in made.items()}
    assert warmth["warm"] > warmth["cool"] + 5, warmth  # the colour grade a model without a prompt gets
    reply = post(server, camera_job(chelsea, style="anime"))  # the camera engine draws no style: refused, not dropped
    assert reply.status_code == 422 and all(words in reply.json()["detail"] for words in literal_words("style.refused",
                                                                                                       "en")), reply.text


def test_a_soundtrack_comes_back_as_the_videos_sound(server, chelsea, tmp_path):
    sound = write_wav(tmp_path / "beat.wav", 0.5)
    job = done(server, post(server, camera_job(chelsea, num_frames=16, soundtrack=wav_url(sound))))
    assert (job["result"]["has_audio"], job["result"]["audio"]) == (True, "soundtrack")
    assert job["result"]["video"]["soundtrack"] == "soundtrack.wav" and str(tmp_path) not in str(job)
    samples, rate = read_audio(download(server, job, "sound.mp4"))
    assert abs(samples.shape[-1] / rate - 2.0) < 0.1  # 16 frames at 8 fps: the half second looped to 2 s
    long = write_wav(tmp_path / "long.wav", 1.0)
    with chelsea.open("rb") as photo, long.open("rb") as track:
        reply = httpx.post(f"{server.url}/api/v1/jobs", headers=auth(ALICE), timeout=60,
                           files={"image": ("cat.png", photo, "image/png"), "soundtrack": ("b.wav", track, "audio/wav")},
                           data={"prompt": "a cat", "model": "camera", "height": "64", "width": "64",
                                 "num_frames": "4", "fps": "8"})  # fmt: skip
    job = done(server, reply)
    samples, rate = read_audio(download(server, job, "multipart.mp4"))
    assert job["result"]["has_audio"] and abs(samples.shape[-1] / rate - 0.5) < 0.1  # 4 frames at 8 fps: 1 s trimmed
    assert "sound.trimmed" in [said["code"] for said in job["result"]["video"]["adjustments"]], job["result"]


def test_references_are_uploads_that_reach_the_model_with_their_labels(server, chelsea, coffee, tmp_path):
    clip = write_clip(tmp_path / "mug.mp4")
    clip_url = "data:video/mp4;base64," + base64.b64encode(clip.read_bytes()).decode()
    body = {"image": data_url(chelsea), "prompt": "the cat looks at the mug", "height": 32, "width": 32,
            "num_frames": 13, "num_inference_steps": 2, "seed": 2,
            "references": [{"image": data_url(coffee), "label": "the mug"}, {"image": clip_url, "label": "the clip"}]}  # fmt: skip
    job = done(server, post(server, body))
    assert job["result"]["video"]["references"] == [{"file": "reference_1.jpg", "label": "the mug"},  # as sent
                                                    {"file": "reference_2.mp4", "label": "the clip"}]  # fmt: skip
    assert read_mp4(download(server, job, "vace.mp4"))[0].shape == (13, 32, 32, 3)
    for value in ("/etc/passwd", str(coffee), "https://example.com/mug.jpg"):  # never read, never fetched
        reply = post(server, {**body, "references": [{"image": value, "label": "x"}]})
        assert reply.status_code == 422 and "'references[0].image' must be a data URL" in reply.json()["detail"]
    reply = post(server, camera_job(chelsea, references=[{"image": data_url(coffee), "label": "the mug"}]))
    assert reply.status_code == 422 and all(w in reply.json()["detail"] for w in literal_words("reference.not_supported",
                                                                                               "en")), reply.text
    reply = post(server, {**body, "references": [{"image": data_url(coffee)}] * 5})
    assert reply.status_code == 422 and reply.json()["detail"][0]["loc"][-1] == "references"
    with coffee.open("rb") as photo, chelsea.open("rb") as mug:
        reply = httpx.post(f"{server.url}/api/v1/jobs", headers=auth(ALICE), timeout=60,
                           files=[("image", ("cat.png", photo, "image/png")), ("reference_2", ("m.png", mug, "image/png"))],
                           data={"prompt": "a cat", "reference_label_2": "the mug", "reference_label_3": "the dog"})  # fmt: skip
    assert reply.status_code == 422 and "Reference 3 has a label (the dog) but no photo or clip" in reply.text


def test_a_file_over_the_limit_is_a_413_that_names_it(server, chelsea, tmp_path):
    big = write_wav(tmp_path / "long.wav", 40.0)  # 1.3 MB: over I2V_MAX_UPLOAD_MB=1
    reply = post(server, camera_job(chelsea, soundtrack=wav_url(big)))
    assert reply.status_code == 413 and "'soundtrack' is 1.2 MB" in reply.json()["detail"], reply.text
    with chelsea.open("rb") as photo, big.open("rb") as huge:
        reply = httpx.post(f"{server.url}/api/v1/jobs", headers={**auth(ALICE), "Accept-Language": "zh-CN"}, timeout=60,
                           files=[("image", ("cat.png", photo, "image/png")), ("reference_3", ("r.mp4", huge, "video/mp4"))],
                           data={"prompt": "a cat"})  # fmt: skip
    assert reply.status_code == 413 and "'reference_3'" in reply.json()["detail"] and "最多" in reply.json()["detail"]

    def chunks(megabytes: int):  # a body with no length to check first: counted as it streams in
        yield b'{"image": "data:image/png;base64,'
        for _ in range(megabytes):
            yield b"A" * 1024**2
        yield b'", "prompt": "x"}'

    room = body_limit(1.0)  # seven files of 1 MB as base64, and 1 MiB: 10.3 MB
    assert 10 * 1024**2 < room < 11 * 1024**2
    reply = httpx.post(f"{server.url}/api/v1/jobs", content=chunks(11), timeout=60,
                       headers={**auth(ALICE), "content-type": "application/json"})  # fmt: skip
    assert reply.status_code == 413 and "the files of one request together" in reply.json()["detail"], reply.text


def test_templates_are_listed_in_the_requests_language(server):
    listed = httpx.get(f"{server.url}/api/v1/templates?model=camera", timeout=10,
                       headers={**auth(ALICE), "Accept-Language": "zh-CN"}).json()  # fmt: skip
    assert [row["name"] for row in listed["templates"]] == list(templates())
    dance = next(row for row in listed["templates"] if row["name"] == "dance")
    assert dance["label"] == get_template("dance").label.zh and dance["camera_motion"] == "static"
    camera = get_family("camera")  # the frames its length takes at the model's fps, as the check step counts them
    assert listed["model"] == "camera" and dance["num_frames"] == round(get_template("dance").seconds * camera.fps)
    assert httpx.get(f"{server.url}/api/v1/templates", timeout=10).status_code == 401


def test_refine_answers_with_the_prompt_that_runs_and_bounded_advice(server, coffee):
    body = {"prompt": "a cat plays", "template": "dance", "style": "Anime", "color_palette": "warm",
            "motion_intensity": 1.2, "camera_motion": "orbit_left", "references": [{"image": data_url(coffee),
                                                                                     "label": "the red mug"}]}  # fmt: skip
    reply = httpx.post(f"{server.url}/api/v1/refine", json=body, headers=auth(ALICE), timeout=60)
    assert reply.status_code == 200, reply.text
    refined = reply.json()
    assert refined["camera_motion"] == "orbit_left" and "the red mug" in refined["prompt"].lower()
    assert "anime" in refined["prompt"].lower()
    advice = refined["advice"]
    low, high = bounds("wan-vace-1.3b").frames
    assert advice["suggestions"]["num_frames"] == high and advice["apply"]["num_frames"] == high  # the LLM said 5000
    assert advice["source"]["num_frames"] == "refiner" and advice["apply"]["guidance_scale"] is not None  # the template's
    assert advice["estimate"] is None and "No GPU here" in advice["text"]  # a CPU server: no estimate, said
    job = done(server, post(server, {"image": data_url(coffee), "prompt": refined["prompt"], "height": 32, "width": 32,
                                     "num_frames": 9, "num_inference_steps": 2, "template": "dance", "style": "anime",
                                     "color_palette": "warm", "motion_intensity": 1.2, "camera_motion": "orbit_left",
                                     "references": body["references"]}))  # fmt: skip
    assert job["result"]["video"]["prompt"] == refined["prompt"]  # the engine added nothing: the preview ran
    assert job["result"]["video"]["num_frames"] == 9  # the advice was not applied unasked
    reply = httpx.post(f"{server.url}/api/v1/refine", json={"prompt": "a cat", "model": "camera", "style": "anime"},
                       headers=auth(ALICE), timeout=60)  # fmt: skip
    assert reply.status_code == 422 and "style anime" in reply.json()["detail"]
    # A template instead of words: its motion is the prompt; neither is refused, in the request's language
    reply = httpx.post(f"{server.url}/api/v1/refine", json={"prompt": "", "model": "camera", "template": "wave"},
                       headers=auth(ALICE), timeout=60)  # fmt: skip
    assert reply.status_code == 200 and reply.json()["prompt"].strip(), reply.text  # (the camera reads no words)
    for header, words in (("en", "a prompt or a template is needed"), ("zh", "需要提示词或动作模板")):
        reply = httpx.post(f"{server.url}/api/v1/refine", json={"prompt": " ", "model": "camera"},
                           headers={**auth(ALICE), "Accept-Language": header}, timeout=60)  # fmt: skip
        assert reply.status_code == 422 and words in reply.json()["detail"], reply.text


def test_a_batch_sends_references_and_a_soundtrack_from_beside_its_file(server, chelsea, coffee, tmp_path):
    from studio.batch import main as batch

    folder = tmp_path / "b"
    folder.mkdir()
    write_wav(folder / "beat.wav", 0.5)
    (folder / "mug.png").write_bytes(coffee.read_bytes())
    (folder / "cat.png").write_bytes(chelsea.read_bytes())
    line = {"image": "cat.png", "prompt": "a cat", "height": 32, "width": 32, "num_frames": 9, "num_inference_steps": 2}
    lines = [{**line, "model": "camera", "num_frames": 16, "fps": 8, "soundtrack": "beat.wav"},
             {**line, "references": [{"image": "mug.png", "label": "the mug"}]},
             {**line, "references": [{"image": "missing.mp4", "label": "gone"}]}]  # fmt: skip
    file = folder / "jobs.jsonl"
    file.write_text("\n".join(json.dumps(entry) for entry in lines) + "\n", encoding="utf-8")
    assert batch([str(file), "--server", server.url, "--token", ALICE]) == 1  # one line failed
    rows = {row["line"]: row for row in json.loads(file.with_name("jobs.jsonl.summary.json").read_text())["lines"]}
    assert [rows[n]["status"] for n in (1, 2, 3)] == ["done", "done", "failed"], rows
    assert rows[3]["error"] == "file missing.mp4 is not there"
    samples, rate = read_audio(Path(rows[1]["output"]))
    assert abs(samples.shape[-1] / rate - 2.0) < 0.1
    made = read_comment(Path(rows[2]["output"]))  # the metadata the MP4 carries (a --server batch keeps no JSON)
    assert made["references"] == [{"file": "reference_1.png", "label": "the mug"}]
