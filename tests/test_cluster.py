"""Several boxes on Ray Serve (studio/cluster.py, `i2v serve --ray`): a real Ray cluster on this machine
(`ray start --head`, in a folder of its own, torn down by its process ids), two CPU replicas around a
tiny model, a job submitted through the REST API on Serve's port, the replica running it killed with
`kill -9` mid-job, and the job finished by the other (attempt 2, a video that decodes). Around it: the
store's refusals crossing the actor with their words, partial files named by host (a shared output
folder holds other hosts' live ones), and the command's errors without a traceback."""

from __future__ import annotations

import base64
import os
import pickle
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from llama import free_port

from i2v.export import _partial, read_mp4, remove_orphaned_partials
from studio.cluster import MARK, NETWORK_FILESYSTEMS, StoreKeeper, filesystem_of
from studio.store import StoreError

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "cluster-token-0123456789"
HOST = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())


# ---------------------------------------------------------------------- without a cluster
def test_partials_carry_their_host_and_only_this_hosts_dead_writers_are_removed(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    mine = _partial(tmp_path / "clip.mp4")
    assert mine.name.startswith(f".clip.mp4.{HOST}-{os.getpid()}.") and mine.name.endswith(".part")
    here_dead = tmp_path / f".a.mp4.{HOST}-{dead.pid}.0123abcd.part"
    here_live = tmp_path / f".b.mp4.{HOST}-{os.getpid()}.4567cdef.part"
    # another box's writer, its pid dead here or alive here: either way never touched (its pid means nothing here)
    other_dead = tmp_path / f".c.json.other-node.example-{dead.pid}.89abcdef.part"
    other_alive_pid = tmp_path / f".d.mp4.gpu-box-7-{os.getpid()}.0a1b2c3d.part"
    older_pid = tmp_path / f".e.mp4.{dead.pid}.13579bdf.part"  # before hosts were in the name: this host's
    older = tmp_path / ".f.mp4.2468ace0.part"  # before pids were in the name
    for path in (mine, here_dead, here_live, other_dead, other_alive_pid, older_pid, older):
        path.write_bytes(b"x")
    assert sorted(remove_orphaned_partials(tmp_path)) == sorted([here_dead, older_pid, older])
    assert all(path.exists() for path in (mine, here_live, other_dead, other_alive_pid))


def test_the_stores_refusals_cross_the_actor_with_their_words(tmp_path, chelsea):
    keeper = StoreKeeper(str(tmp_path / "out"), 1, str(tmp_path / "db" / "jobs.sqlite3"))  # the actor's class, here
    try:
        assert (tmp_path / "out" / ".jobs" / MARK).read_text().strip() == keeper.about()["mark"]
        assert (tmp_path / "db" / "jobs.sqlite3").is_file()  # on the store's node's own disk, not the shared folder
        assert not (tmp_path / "out" / ".jobs" / "jobs.sqlite3").exists()
        job = keeper.call("submit", ("alice", {"prompt": "a cat"}, chelsea.read_bytes(), ".png"), {})
        assert Path(job.form["image"]).read_bytes() == chelsea.read_bytes()  # the store wrote it in the shared folder
        with pytest.raises(StoreError) as refused:
            keeper.call("submit", ("alice", {"prompt": "a dog"}, chelsea.read_bytes(), ".png"), {})
        error = pickle.loads(pickle.dumps(refused.value))  # as it reaches a replica (Ray pickles it)
        assert isinstance(error, StoreError)
        assert error.message.code == "studio.queue_full" and "1" in str(error)
        with pytest.raises(AttributeError):
            keeper.call("hold", (), {})  # nobody holds a shared store
        with pytest.raises(AttributeError):
            keeper.call("recover", (), {})  # it would interrupt every other replica's jobs
    finally:
        keeper.close()


def test_the_filesystem_of_a_path(tmp_path):
    assert filesystem_of(Path("/proc/self")) == "proc"
    assert filesystem_of(tmp_path / "not" / "made" / "yet") not in NETWORK_FILESYSTEMS


def test_serve_says_what_is_wrong_without_a_traceback(monkeypatch, capsys):
    from commands import main

    port = free_port()  # nothing listens there
    assert main(["serve", "--ray", f"127.0.0.1:{port}", "--gpus-per-replica", "0"]) == 2
    said = capsys.readouterr().err
    assert f"no Ray cluster answers at 127.0.0.1:{port}" in said and "ray start --head" in said
    assert "Traceback" not in said
    for argv, words in ((["serve", "--replicas", "2"], "--replicas is for a Ray cluster"),
                        (["serve", "--ray", "auto", "--replicas", "0"], "--replicas 0 is not allowed"),
                        (["serve", "--ray", "auto", "--gpus-per-replica", "-1"],
                         "--gpus-per-replica -1 is not allowed")):  # fmt: skip
        with pytest.raises(SystemExit) as ended:
            main(argv)
        assert ended.value.code == 2 and words in capsys.readouterr().err
    assert main(["serve", "--port", "70000"]) == 2  # without --ray: the app itself (app.py), with its own checks
    assert "settings: port" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray.serve", None)  # Ray (or its Serve part) not installed
    assert main(["serve", "--ray", "auto"]) == 2
    assert "pip install 'i2v-studio[ray]'" in capsys.readouterr().err


# ---------------------------------------------------------------------- a real cluster
class RayHead:
    """`ray start --head --block` on this machine, in a session and a short temporary folder of its own
    (its sockets' paths must stay short). Torn down by process id: the head's process group, then
    every process that was under it (Ray's workers run in groups of their own)."""

    def __init__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="i2v-ray-", dir="/tmp"))
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.process = None

    def start(self, timeout: float = 90) -> RayHead:
        ray = Path(sys.executable).parent / "ray"
        command = [str(ray), "start", "--head", "--block", "--num-cpus", "4", "--num-gpus", "0", "--port",
                   str(self.port), "--include-dashboard=false", "--disable-usage-stats", "--temp-dir", str(self.folder),
                   "--ray-client-server-port", str(free_port()),
                   "--dashboard-agent-listen-port", str(free_port())]  # fmt: skip
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1"}
        with (self.folder / "head.log").open("ab") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.folder / "head.log").read_text(errors="replace")[-3000:]
            if "will now block" in (self.folder / "head.log").read_text(errors="replace"):
                return self
            time.sleep(0.3)
        raise AssertionError("the Ray head did not start: " + (self.folder / "head.log").read_text()[-3000:])

    def stop(self) -> None:
        if self.process is None:
            return
        under = _descendants(self.process.pid)
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for pid in under:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(30)
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)


def _descendants(root: int) -> list[int]:
    """Every process under `root` (children, their children, ...), from /proc."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    found, frontier = [], [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


auth = {"Authorization": f"Bearer {TOKEN}"}


def _get(url: str, timeout: float = 10) -> httpx.Response | None:
    """A GET through Serve, or None while a replica is being replaced (its proxy answers 5xx or not at all)."""
    try:
        reply = httpx.get(url, headers=auth, timeout=timeout)
    except httpx.HTTPError:
        return None
    return None if reply.status_code >= 500 else reply


def _submit(url: str, body: dict) -> str:
    reply = httpx.post(f"{url}/api/v1/jobs", json=body, headers=auth, timeout=60)
    assert reply.status_code == 202, reply.text
    return reply.json()["id"]


def _denoising(url: str, job_id: str, timeout: float = 120) -> None:
    """Wait until the job is in its denoising loop: mid-job."""
    deadline = time.monotonic() + timeout
    while True:
        assert time.monotonic() < deadline, f"job {job_id} never reached denoising"
        job = _get(f"{url}/api/v1/jobs/{job_id}")
        if job is not None and job.json()["progress"]["stage"] == "denoising":
            return
        time.sleep(0.1)


def _ended(url: str, job_id: str, log: Path, timeout: float = 150) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        assert time.monotonic() < deadline, log.read_text(errors="replace")[-4000:]
        job = _get(f"{url}/api/v1/jobs/{job_id}")
        if job is not None and job.json()["status"] in ("done", "failed", "stopped"):
            return job.json()
        time.sleep(0.3)


def test_a_replica_killed_mid_job_and_the_other_finishes_it(tiny_model, tmp_path, chelsea):
    head = RayHead()
    out, db, port = tmp_path / "outputs", tmp_path / "store" / "jobs.sqlite3", free_port()
    env = {**os.environ, "I2V_MODEL": tiny_model, "I2V_OUTPUT_DIR": str(out), "I2V_STORE_DB": str(db),
           "I2V_LEASE_S": "6", "I2V_PORT": str(port), "I2V_API_TOKENS": f"alice:{TOKEN}",
           "RAY_USAGE_STATS_ENABLED": "0"}  # fmt: skip
    log = tmp_path / "serve.log"
    serving = None
    try:
        head.start()
        with log.open("ab") as sink:
            serving = subprocess.Popen([sys.executable, str(ROOT / "commands.py"), "serve", "--ray", head.address,
                                        "--replicas", "2", "--gpus-per-replica", "0"], cwd=ROOT, env=env,
                                       stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + 180
        while "REST API on Ray Serve" not in log.read_text(errors="replace"):
            assert serving.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")[-4000:]
            time.sleep(0.3)
        said = log.read_text(errors="replace")
        assert f"http://127.0.0.1:{port}/api/v1/jobs (2 replica(s), CPU each" in said and str(db) in said
        url = f"http://127.0.0.1:{port}"

        # 1. A job through the REST API on Serve's port (a bearer token: the API's own auth, on a replica)
        assert httpx.get(f"{url}/api/v1/jobs", timeout=30).status_code == 401
        photo = "data:image/png;base64," + base64.b64encode(chelsea.read_bytes()).decode()
        body = {"image": photo, "prompt": "a cat turns its head", "height": 256, "width": 256, "num_frames": 17,
                "seed": 3}  # fmt: skip
        job_id = _submit(url, {**body, "num_inference_steps": 50})

        # 2. The replica running it killed mid-job: its pid is in the job's worker ("host:pid:slot")
        store = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        _denoising(url, job_id)
        worker = store.execute("SELECT worker FROM jobs WHERE id=?", (job_id,)).fetchone()[0]
        host, pid, slot = worker.rsplit(":", 2)
        assert host == socket.gethostname() and slot == "0"
        assert "ServeReplica" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")  # ours, a replica
        os.kill(int(pid), signal.SIGKILL)

        # 3. Its heartbeat stops; after I2V_LEASE_S another replica queues it again and runs it
        job = _ended(url, job_id, log)
        assert job["status"] == "done" and job["attempts"] == 2, job
        second = store.execute("SELECT worker FROM jobs WHERE id=?", (job_id,)).fetchone()[0]
        assert second.split(":")[1] != pid  # run by another replica
        video = _get(url + job["video_url"], timeout=30)
        assert video is not None and video.status_code == 200
        (tmp_path / "got.mp4").write_bytes(video.content)
        frames, _ = read_mp4(tmp_path / "got.mp4")
        assert frames.shape == (17, 256, 256, 3) and frames.std() > 1  # a real video, whole
        assert len(list(out.glob("*.mp4"))) == 1  # once: the killed attempt left no video

        # 4. Stop reaches a running job, whichever replica the DELETE lands on (the pool's own, or another's)
        stopped = _submit(url, {**body, "height": 512, "width": 512, "num_frames": 33, "num_inference_steps": 200})
        _denoising(url, stopped)
        assert httpx.delete(f"{url}/api/v1/jobs/{stopped}", headers=auth, timeout=30).status_code == 202
        assert _ended(url, stopped, log)["status"] == "stopped"

        # 5. Ctrl-C (SIGTERM here) stops the deployment and the store's actor: a running job goes back to the
        # queue, its attempt not counted; every job stays in the store
        # (a larger video: the tiny model's 200 steps at 256x256 take 2-3 s, less than Serve's stopping may)
        waiting = _submit(url, {**body, "height": 512, "width": 512, "num_frames": 33, "num_inference_steps": 200})
        _denoising(url, waiting)
        serving.send_signal(signal.SIGTERM)
        assert serving.wait(90) == 0, log.read_text(errors="replace")[-3000:]
        assert "stopping" in log.read_text(errors="replace")
        rows = dict(store.execute("SELECT id, status || ' ' || attempts FROM jobs").fetchall())
        assert rows == {job_id: "done 2", stopped: "stopped 1", waiting: "queued 0"}
        store.close()
    finally:
        if serving is not None and serving.poll() is None:
            os.killpg(serving.pid, signal.SIGKILL)
            serving.wait(30)
        head.stop()
