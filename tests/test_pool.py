"""Several devices in one box (issue 16): the pool gives each waiting job, in queue order, to a free
device whose memory fits it, keeps the devices a waiting job needs from the jobs behind it, and runs
jobs side by side on CPU devices with fake sizes (I2V_DEVICES=cpu=8,cpu=80), with the real planner
and a real job store."""

from __future__ import annotations

import time

import pytest
from ranks import ranks_running
from waiting import wait_until

from i2v.hardware import DeviceSpec, parse_devices
from studio.pool import SlotView, assign
from studio.store import ENDED, Job


def job(seq: int, need_gb: float = 0, gpus: int = 1, model: str | None = None) -> Job:
    form = {"need_gb": need_gb, "gpus": gpus, "model": model}
    return Job(seq, f"job{seq}", "alice", None, "queued", form, "en", 0.0, None, None, 0, None, None, None, None, None,
               None, None, None, None, None)  # fmt: skip


def fits(job: Job, slot: SlotView) -> bool:  # the planner's answer, as a number of GB here
    return slot.gb is None or job.form["need_gb"] <= slot.gb


def placed(plan) -> dict[str, list[int]]:
    return {job.id: slots for job, slots in plan}


# ---------------------------------------------------------------------- the rule
def test_a_job_goes_to_the_smallest_free_device_that_fits_it():
    slots = [SlotView(0, True, 80), SlotView(1, True, 24), SlotView(2, True, 48)]
    assert placed(assign([job(1, need_gb=30), job(2, need_gb=10)], slots, fits)) == {"job1": [2], "job2": [1]}


def test_a_device_holding_the_jobs_model_comes_first():
    slots = [SlotView(0, True, 24, loaded="wan"), SlotView(1, True, 24, loaded="ltx")]
    model = lambda job: job.form["model"]  # noqa: E731
    assert placed(assign([job(1, model="ltx"), job(2, model="wan")], slots, fits, model)) == {"job1": [1], "job2": [0]}


def test_a_waiting_job_is_never_overtaken_on_the_devices_it_fits():
    # the big job fits only the busy 80 GB device: it waits; the small one behind it runs on the free 24 GB one
    slots = [SlotView(0, True, 24), SlotView(1, False, 80)]
    assert placed(assign([job(1, need_gb=60), job(2, need_gb=10)], slots, fits)) == {"job2": [0]}
    # now both are free: the big job takes the 80 GB device, the small one the 24 GB one, in order
    slots = [SlotView(0, True, 24), SlotView(1, True, 80)]
    assert placed(assign([job(1, need_gb=60), job(2, need_gb=10)], slots, fits)) == {"job1": [1], "job2": [0]}
    # a small job at the head fits both: it takes the free one, and the next small job may not pass it
    slots = [SlotView(0, False, 24), SlotView(1, True, 80)]
    assert placed(assign([job(1, need_gb=10), job(2, need_gb=10)], slots, fits)) == {"job1": [1]}


def test_a_job_across_several_gpus_waits_for_them_and_nobody_takes_them_meanwhile():
    slots = [SlotView(0, True, 80), SlotView(1, False, 80), SlotView(2, True, 80)]
    plan = assign([job(1, gpus=3), job(2), job(3)], slots, fits)
    assert plan == []  # the three-GPU job is first: the free devices are kept for it
    slots = [SlotView(0, True, 80), SlotView(1, True, 80), SlotView(2, True, 80)]
    assert placed(assign([job(1, gpus=3), job(2)], slots, fits)) == {"job1": [0, 1, 2]}
    # two of three asked: the third device runs the next job
    assert placed(assign([job(1, gpus=2), job(2)], slots, fits)) == {"job1": [0, 1], "job2": [2]}


def test_a_job_no_device_fits_goes_to_any_free_one_in_its_turn():
    slots = [SlotView(0, True, 8), SlotView(1, True, 16)]
    assert placed(assign([job(1, need_gb=500), job(2, need_gb=4)], slots, fits)) == {"job1": [0], "job2": [1]}


def test_i2v_devices_is_read_with_sizes_and_refused_with_the_rule():
    assert parse_devices("cuda:0, cuda:1=40,cpu=24 ,cpu") == [
        DeviceSpec("cuda:0"), DeviceSpec("cuda:1", 40.0), DeviceSpec("cpu", 24.0), DeviceSpec("cpu")]  # fmt: skip
    assert parse_devices("cuda") == [DeviceSpec("cuda:0")]
    for bad, words in [("gpu0", "is not a device"), ("cuda:0,cuda:0", "twice"), ("cpu=-3", "above 0"),
                       ("cpu=lots", "above 0"), (" , ", "no device")]:  # fmt: skip
        with pytest.raises(ValueError, match=words):
            parse_devices(bad)
    from pydantic import ValidationError

    from settings import Settings

    with pytest.raises(ValidationError, match="is not a device"):
        Settings(devices="cuda:x")


# ---------------------------------------------------------------------- a real pool, on the CPU


@pytest.fixture
def pool_hosting(tmp_path, tiny_model):
    from settings import Settings
    from studio.hosting import make_hosting

    hosting = make_hosting(Settings(model=tiny_model, output_dir=tmp_path / "out", devices="cpu=8,cpu=80", queue_size=8))
    yield hosting
    hosting.close()
    hosting.store.close()


def test_jobs_spread_over_fake_sized_devices_by_the_planner_and_run_side_by_side(pool_hosting, tiny_model, chelsea):
    hosting, store = pool_hosting, pool_hosting.store
    small = {"image": str(chelsea), "height": 64, "width": 64, "num_frames": 5, "num_inference_steps": 2, "seed": 1,
             "prompt": "a cat turns its head"}  # fmt: skip
    # memory "none": the planner puts this tiny Wan 2.2 5B (its measured profile: about 21 GB) on the 80 GB device only
    big = hosting.submit({**small, "model": tiny_model, "memory_strategy": "none"}, "alice", "en")
    # the camera engine fits anywhere: the smallest free device
    camera = hosting.submit({**small, "model": "camera", "camera_motion": "zoom_in", "num_frames": 48}, "bob", "en")
    third = hosting.submit({**small, "model": "camera", "camera_motion": "pan_left"}, "carol", "en")
    assert store.position(third) == 2  # positions are the one queue's, whatever device runs a job
    seen_together = []

    def both_running():
        running = {job.id for job in store.running()}
        if {big.id, camera.id} <= running:
            waiting = store.get(third.id)
            ahead = hosting.position(waiting) if waiting.status == "queued" else None
            if {big.id, camera.id} <= {job.id for job in store.running()}:  # still both: the position was theirs
                seen_together.append(ahead)
        return all(store.get(j.id).status in ENDED for j in (big, camera, third))

    hosting.start()
    wait_until(both_running, 240)
    done = {j.id: store.get(j.id) for j in (big, camera, third)}
    assert {job.status for job in done.values()} == {"done"}, [job.error for job in done.values()]
    assert done[big.id].devices == ["cpu"] and done[big.id].worker.endswith(":1")  # the 80 GB device
    assert done[camera.id].worker.endswith(":0")  # the 8 GB one: the smallest that fits
    assert seen_together, "the two devices never ran jobs at the same time"
    assert {1, None} >= set(seen_together)  # two running on two devices: the third starts once one of them ends
    rows = hosting.pool.describe()
    assert [(row["index"], row["state"], row["total_gb"]) for row in rows] == [(0, "idle", 8.0), (1, "idle", 80.0)]
    assert rows[1]["loaded"] == "wan2.2-ti2v-5b"  # each device keeps its own model


def test_a_job_asking_more_gpus_than_the_pool_has_is_refused_before_it_is_queued(pool_hosting, tiny_model, chelsea):
    from studio.service import StudioError

    form = {"image": str(chelsea), "model": tiny_model, "height": 64, "width": 64, "num_frames": 5, "gpus": 3,
            "prompt": "a cat"}  # fmt: skip
    with pytest.raises(StudioError) as refused:
        pool_hosting.submit(form, "alice", "en")
    assert refused.value.message.code == "pool.too_many_gpus" and "3" in str(refused.value)
    assert pool_hosting.store.count() == 0


def test_a_killed_process_of_a_video_across_devices_runs_it_again_and_the_pool_goes_on(tmp_path, tiny_model, chelsea):
    """One worker fails under a job (a rank of a 2-device video killed with SIGKILL): the others are
    stopped, the job is queued again with its attempt counted and made whole on the second try; a
    job behind it runs too."""
    import os
    import signal

    from i2v.export import read_mp4
    from settings import Settings
    from studio.hosting import make_hosting

    hosting = make_hosting(Settings(model=tiny_model, output_dir=tmp_path / "out", devices="cpu,cpu"))
    store = hosting.store
    form = {"image": str(chelsea), "model": tiny_model, "height": 64, "width": 64, "num_frames": 5, "seed": 3,
            "num_inference_steps": 200, "prompt": "a cat turns its head", "gpus": 2}  # fmt: skip  # slow enough to kill
    across = hosting.submit(form, "alice", "en")
    after = hosting.submit({**form, "gpus": 1, "num_inference_steps": 2}, "bob", "en")
    hosting.start()
    try:
        wait_until(lambda: (job := store.get(across.id)).stage == "denoising" and (job.step or 0) >= 2, 180)
        killed = ranks_running()
        assert len(killed) == 2, killed
        os.kill(killed[1], signal.SIGKILL)  # rank 1 dies mid-video
        wait_until(lambda: not set(killed) & set(ranks_running()), 60)  # rank 0 was stopped too: nothing left behind
        done = wait_until(lambda: (job := store.get(across.id)).status in ENDED and job, 240)
        later = wait_until(lambda: (job := store.get(after.id)).status in ENDED and job, 120)
    finally:
        hosting.close()
        store.close()
    assert (done.status, done.attempts, done.devices) == ("done", 2, ["cpu", "cpu"]), done.error
    assert later.status == "done", later.error
    frames, _ = read_mp4(done.video)
    assert frames.shape[:3] == (5, 64, 64)
    assert not ranks_running()


def test_a_queue_position_counts_the_jobs_that_must_start_or_end_first(tmp_path, chelsea):
    from studio.store import JobStore

    store = JobStore(tmp_path / "out")
    try:
        jobs = [store.submit("alice", {"prompt": f"job {n}"}, chelsea) for n in range(4)]
        store.claim("box:1:0", ["cuda:0"], jobs[0].id)
        store.claim("box:1:1", ["cuda:1"], jobs[1].id)
        third, fourth = store.get(jobs[2].id), store.get(jobs[3].id)
        assert [store.position(third, workers=2), store.position(fourth, workers=2)] == [1, 2]  # one must end first
        assert [store.position(third, workers=3), store.position(fourth, workers=3)] == [0, 1]  # a worker is free
        assert store.position(third) == 2  # one worker: both running jobs end first
    finally:
        store.close()


def test_a_worker_that_lost_its_job_changes_nothing_and_a_stop_asked_survives_its_death(tmp_path, chelsea):
    """Several boxes: a worker silent past its lease loses its job to another; its late writes (progress,
    a shutdown's requeue, its video) change nothing, so the job runs once and ends once."""
    from studio.store import JobStore

    store = JobStore(tmp_path / "out")
    try:
        job = store.submit("alice", {"prompt": "a cat"}, chelsea)
        store.claim("box-a:1:0", ["cuda:0"], job.id)
        time.sleep(0.05)
        assert [found.id for found in store.reclaim(0.01)] == [job.id]  # box A went silent
        assert store.claim("box-b:2:0", ["cuda:0"], job.id).worker == "box-b:2:0"
        store.progress(job.id, "denoising", 3, 30, None, worker="box-a:1:0")
        store.requeue(job.id, worker="box-a:1:0")
        assert not store.finish(job.id, "done", video="/a.mp4", worker="box-a:1:0")
        now = store.get(job.id)
        assert (now.status, now.worker, now.step, now.video, now.attempts) == ("running", "box-b:2:0", None, None, 2)
        assert store.finish(job.id, "done", video="/b.mp4", worker="box-b:2:0")
        assert store.get(job.id).video == "/b.mp4"
        # a person stops a job whose worker then dies: it stays stopped, it does not run again
        other = store.submit("bob", {"prompt": "a dog"}, chelsea)
        store.claim("box-a:1:0", ["cuda:0"], other.id)
        assert store.ask_stop(other.id)
        time.sleep(0.05)
        assert [found.status for found in store.reclaim(0.01)] == ["stopped"]
    finally:
        store.close()
