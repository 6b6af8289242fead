"""Long videos in the studio, on the camera engine: a server's shutdown never leaves a long video
shortened (its job runs again, whole), "Load into form" divides only by what was really done, and
the page's segments box wins over a stale prompt box, one rule for the page and the API."""

from __future__ import annotations

import pytest
from waiting import wait_until

from i2v.export import read_mp4
from studio.store import ENDED

FRAMES = 41  # a segment: 41 frames, the three 41 + 40 + 40


def camera_hosting(out):
    from settings import Settings
    from studio.hosting import make_hosting

    return make_hosting(Settings(model="camera", output_dir=out, device="cpu"))


def long_form(chelsea, seed: int) -> dict:
    return {"image": str(chelsea), "model": "camera", "camera_motion": "zoom_in", "segments": "a\nb\nc",
            "keep_segments": True, "num_frames": FRAMES, "height": 32, "width": 48, "fps": 8, "seed": seed}  # fmt: skip




def test_a_shutdown_during_a_long_video_queues_it_again_and_keeps_no_shortened_video(tmp_path, chelsea, monkeypatch):
    out = tmp_path / "out"
    hosting = camera_hosting(out)
    store, worker = hosting.store, hosting.pool
    asked = hosting.submit(long_form(chelsea, 1), "alice", "en")  # a person stops this one
    shut = hosting.submit(long_form(chelsea, 2), "alice", "en")  # the server's shutdown stops this one
    real = store.progress

    def progress(job_id, stage, step, total, eta, **mine):  # the worker's progress, as the store gets it
        real(job_id, stage, step, total, eta, **mine)
        if stage == "rendering" and step > total // 3 + 2:  # segment 2 of 3 is rendering
            if job_id == asked.id:
                worker.cancel(store.get(job_id))
            else:
                worker.stop_soon()

    monkeypatch.setattr(store, "progress", progress)
    hosting.start()
    try:
        kept = wait_until(lambda: (job := store.get(asked.id)).status in ENDED and job)
        wait_until(lambda: worker.stopping)
        ended = wait_until(lambda: (job := store.get(shut.id)).status != "running" and job)
    finally:
        hosting.close()
        store.close()
    # A person's Stop with keep_segments: the finished segment is the video
    assert kept.status == "done" and any("stopped after 1 of 3 segments" in w for w in kept.result["warnings"])
    assert len(read_mp4(kept.video)[0]) == FRAMES
    # The shutdown's: queued again in its place, its attempt not counted, and no file of it left
    assert (ended.status, ended.attempts, ended.video) == ("queued", 0, None)
    assert sorted(p.name for p in out.glob("*.mp4")) == [kept.video.rsplit("/", 1)[-1]]
    assert len(list(out.glob("*.json"))) == 1
    # The next start makes it whole
    again = camera_hosting(out)
    again.start()
    try:
        done = wait_until(lambda: (job := again.store.get(shut.id)).status in ENDED and job)
    finally:
        again.close()
        again.store.close()
    assert done.status == "done" and done.attempts == 1
    assert len(read_mp4(done.video)[0]) == FRAMES + 2 * (FRAMES - 1)


def history_item(**fields) -> dict:
    """A history item as the store keeps a finished video's metadata."""
    return {"job": "j1", "status": "done", "time": "12:00", "image": "chelsea.png", "prompt": "a",
            "negative_prompt": "", "camera_motion": "zoom_in", "model": "camera", "family": "camera",
            "num_inference_steps": None, "guidance_scale": None, "seed": 5, "memory_strategy": "none",
            "vae_tiling": False, "segments": [{"prompt": "a", "seed": 5}, {"prompt": "b", "seed": 6}],
            "segment_frames": 9, **fields}  # fmt: skip


@pytest.fixture
def studio(tmp_path):
    hosting = camera_hosting(tmp_path / "out")
    yield hosting.studio
    hosting.store.close()


def test_load_into_form_takes_the_asked_fps_and_divides_only_by_the_upscaling_done(studio):
    # Stopped with keep_segments: written as made, neither upscaled nor interpolated: the form asks again
    # for what the video asked (its fps times the interpolation it did not get)
    stopped = history_item(height=64, width=96, num_frames=9, fps=8, upscale=2, interpolate=2, upscaler=None,
                           interpolation=None)  # fmt: skip
    values = studio.from_history([stopped], "j1")
    assert (values["height"], values["width"], values["fps"], values["num_frames"]) == (64, 96, 16, 9)
    assert (values["upscale"], values["interpolate"]) == ("x2", "x2")  # still what the video asked for
    # Done: the file's fps is the asked one (interpolated and retimed to it), its size twice the model's
    done = history_item(height=128, width=192, num_frames=33, fps=16, upscale=2, interpolate=2, upscaler="lanczos",
                        interpolation="optical_flow")  # fmt: skip
    values = studio.from_history([done], "j1")
    assert (values["height"], values["width"], values["fps"], values["num_frames"]) == (64, 96, 16, 9)


def test_the_segments_box_wins_over_a_stale_prompt_box(studio, chelsea):
    form = {"image": str(chelsea), "model": "camera", "prompt": "an old refined prompt", "words": "猫",
            "segments": "a cat looks up\nthe cat turns"}  # fmt: skip
    sent, dropped = studio.segments_over_prompt(form)
    assert sent["prompt"] == "" and dropped
    assert studio.request(sent).prompt == ""  # the words are no fallback beside segments
    assert studio.segments_over_prompt({**form, "prompt": "a cat looks up"}) == ({**form, "prompt": ""}, False)
    assert studio.segments_over_prompt({**form, "segments": " \n "}) == ({**form, "segments": " \n "}, False)
    # One rule in one place: a prompt beside segments must be the first segment's (the check step)
    from i2v.checks import check
    from i2v.errors import InvalidInput

    with pytest.raises(InvalidInput) as refused:
        check(studio.request(form))
    assert refused.value.code == "request.prompt_and_segments"
    assert check(studio.request({**form, "prompt": "a cat looks up"})).knobs.prompt == "a cat looks up"


def test_the_pages_keyframes_become_the_forms_and_are_copied_into_the_store(tmp_path, chelsea, coffee, tiny_models):
    from settings import Settings
    from studio.hosting import make_hosting
    from studio.service import Studio, StudioError

    assert Studio.with_keyframes({"prompt": "a"}) == {"prompt": "a"}
    form = Studio.with_keyframes({"keyframe_photos": [str(coffee), str(chelsea)], "keyframe_frames": "8， 4"})
    assert form == {"keyframes": [{"image": str(coffee), "frame": 8}, {"image": str(chelsea), "frame": 4}]}
    for frames, words in (("8", r"2 keyframe photo\(s\) but 1 frame number\(s\)"), ("8, x", "'x' is not a number")):
        with pytest.raises(StudioError, match=words):
            Studio.with_keyframes({"keyframe_photos": [str(coffee), str(chelsea)], "keyframe_frames": frames})

    hosting = make_hosting(Settings(model=str(tiny_models["ltx-video-condition"]), output_dir=tmp_path / "out",
                                    device="cpu"))  # fmt: skip
    try:
        job = hosting.submit({"image": str(chelsea), "model": hosting.studio.default_model(), "prompt": "a cat",
                              "height": 32, "width": 32, "num_frames": 17, "keyframe_photos": [str(coffee)],
                              "keyframe_frames": "8"}, "local", "en")  # fmt: skip
        stored = hosting.store.get(job.id).form
        assert [k["frame"] for k in stored["keyframes"]] == [8] and "keyframe_photos" not in stored
        assert str(hosting.store.root) in stored["keyframes"][0]["image"]  # a copy the store holds
        with pytest.raises(Exception, match="keyframe at frame 16"):
            hosting.submit({"image": str(chelsea), "model": hosting.studio.default_model(), "prompt": "a cat",
                            "height": 32, "width": 32, "num_frames": 17, "last_image": str(coffee),
                            "keyframe_photos": [str(coffee)], "keyframe_frames": "16"}, "local", "en")  # fmt: skip
    finally:
        hosting.close()


def test_a_shutdown_while_a_kept_video_is_interpolated_queues_it_again(tmp_path, chelsea, monkeypatch):
    out = tmp_path / "out"
    hosting = camera_hosting(out)
    store, worker = hosting.store, hosting.pool
    job = hosting.submit({**long_form(chelsea, 3), "segments": "", "interpolate": 2}, "alice", "en")
    real = store.progress

    def progress(job_id, stage, step, total, eta, **mine):
        real(job_id, stage, step, total, eta, **mine)
        if stage == "interpolating" and step >= 2:
            worker.stop_soon()

    monkeypatch.setattr(store, "progress", progress)
    hosting.start()
    try:
        wait_until(lambda: worker.stopping)
        ended = wait_until(lambda: (found := store.get(job.id)).status != "running" and found)
    finally:
        hosting.close()
        store.close()
    assert (ended.status, ended.attempts, ended.video) == ("queued", 0, None)  # not a done video missing its frames
    assert not list(out.glob("*.mp4"))


def test_the_disk_check_counts_a_long_videos_segments_interpolation_and_upscaling(tmp_path, chelsea, monkeypatch):
    import shutil
    from types import SimpleNamespace

    from i2v.errors import InvalidInput

    hosting = camera_hosting(tmp_path / "out")
    needed = {}

    def check(form) -> int:
        monkeypatch.setattr(shutil, "disk_usage", lambda path: SimpleNamespace(free=0))
        with pytest.raises(InvalidInput) as refused:
            hosting.pool.workers[0]._check_disk(SimpleNamespace(form=form))
        return refused.value.message.params["needed_mb"]

    try:
        one = {"height": 480, "width": 832, "num_frames": 81}
        needed["one"] = check(one)
        needed["long"] = check({**one, "segments": "a\nb\nc", "interpolate": "x2", "upscale": 2})
    finally:
        hosting.close()
    # three segments (241 frames), twice the frames (481) at four times the pixels: about 24 times the bytes
    from studio.worker import DISK_MARGIN

    margin = DISK_MARGIN // 1024**2
    assert needed["long"] - margin > 20 * (needed["one"] - margin)
