"""Several boxes: the studio on a Ray cluster, started by `i2v serve --ray ADDRESS` (commands.py).

The REST API (api.py) is the ingress of a Ray Serve deployment whose replicas each hold one Hosting
(hosting.py): one replica per GPU (or per G GPUs), its pool running jobs on the GPUs Ray gave it. A
request may reach any node's port and any replica; every replica works from one queue.

The job store. Every replica shares ONE store: studio/store.py's SQLite file, kept on the LOCAL disk
of the node that ran `i2v serve --ray` (I2V_STORE_DB, default ~/.local/share/i2v-studio/), owned by
one named, detached Ray actor pinned to that node (`StoreKeeper`), which the replicas reach through
Ray (`RemoteStore`: JobStore's interface, so hosting.py, pool.py and api.py run unchanged). SQLite's
WAL needs one machine's shared memory and locks, which NFS and its kind do not give, so the file is
never on the shared folder, and only one process ever opens it. Why not Postgres: Ray already links
every node, so this adds no server to run, secure and back up, and no second SQL dialect; the store
keeps its one implementation (its schema, its migrations, its tests); a job makes a few calls a
second at most (progress, heartbeats), far below what one actor serves. The cost: the store's node
is a single point of failure, as the Ray head (its GCS) already is; its jobs survive a restart on
that disk.

The videos, thumbnails and each job's uploaded files live in I2V_OUTPUT_DIR, a folder every node
mounts at the same path: the store's actor writes a job's files there, and each replica checks at
start that it sees the mark the actor wrote there (else it says the folder is not shared).

A replica that dies mid-job stops beating its job's heartbeat: after I2V_LEASE_S another replica's
pool queues the job again (its attempt counted, as after a restart) and runs it; Serve starts a new
replica. Stopping the command (Ctrl-C, SIGTERM) deletes the deployment (running jobs go back to the
queue, their attempt not counted) and the store's actor; the jobs stay in the store's file.

This module imports ray: only `i2v serve --ray` and the replicas import it.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import signal
import socket
import sys
import threading
from pathlib import Path

import ray
from ray import serve
from ray.exceptions import RayActorError, RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from messages import MessageError, note

from .store import JobStore, StoreError

log = logging.getLogger("studio.cluster")

APP = "i2v"  # the Serve application
NAMESPACE = "i2v"  # the Ray namespace of the store's actor
STORE = "i2v-job-store"  # the store's actor, by name: every replica finds it so
MARK = "cluster-mark"  # a file the store's actor writes in <output>/.jobs: a node that reads it shares the folder
# Filesystems SQLite's WAL cannot live on (the type /proc/mounts gives): they share no memory between machines.
NETWORK_FILESYSTEMS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "afs", "lustre", "gpfs", "beegfs", "ceph",
                       "glusterfs", "fuse.sshfs", "fuse.ceph", "fuse.glusterfs", "fuse.juicefs", "fuse.s3fs",
                       "fuse.gcsfuse", "fuse.mountpoint-s3")  # fmt: skip
# JobStore's methods a replica never calls through the actor: it holds nothing (heartbeats say who is
# alive), `recover` would interrupt every other replica's jobs, and waiting and closing are its own.
LOCAL = ("hold", "recover", "wait", "close")
# Calls that change a job: this replica's own waits wake at once (another replica's notice within their wait).
CHANGES = ("submit", "claim", "progress", "finish", "requeue", "stop_queued", "ask_stop", "delete", "reclaim", "lost",
           "remove_old")  # fmt: skip


class ClusterError(MessageError):
    """The cluster cannot run the studio as asked: no Ray, no cluster at that address, a store on NFS, ..."""


def default_db() -> Path:
    """The job store's SQLite file when I2V_STORE_DB is not set: in the user's data folder of the
    store's node (a home on NFS is refused by `where_db`, naming I2V_STORE_DB)."""
    return Path.home() / ".local" / "share" / "i2v-studio" / "jobs.sqlite3"


def filesystem_of(path: Path) -> str | None:
    """The type of the filesystem `path` is (or would be) on, from /proc/mounts; None where it cannot tell."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    path = Path(path).resolve()
    found, longest = None, -1
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        point = Path(parts[1].replace("\\040", " "))
        if (point == path or point in path.parents) and len(str(point)) > longest:
            found, longest = parts[2], len(str(point))
    return found


@ray.remote(num_cpus=0)
def where_db(db: str | None) -> tuple[str, str | None, str]:
    """On the store's node: the database's path (I2V_STORE_DB, else `default_db`), the type of the
    filesystem it is on, and the node's name."""
    path = Path(db).expanduser() if db else default_db()
    return str(path), filesystem_of(path.parent), socket.gethostname()


@ray.remote(num_cpus=0)
def read_mark(root: str) -> tuple[str, str | None]:
    """On one node: its name, and the mark the store's actor wrote in the shared folder (None: not there)."""
    try:
        return socket.gethostname(), (Path(root) / MARK).read_text().strip()
    except OSError:
        return socket.gethostname(), None


class StoreKeeper:
    """The cluster's one JobStore, in a Ray actor on the node whose local disk holds its SQLite file.
    Threaded (`max_concurrency`): JobStore serialises its own writes, and a large upload being written
    into the shared folder does not hold up a heartbeat."""

    def __init__(self, output_dir: str, queue_size: int, db: str):
        self.store = JobStore(Path(output_dir), queue_size, db=Path(db))
        self.db, self.host, self.output_dir = db, socket.gethostname(), output_dir
        self.mark = secrets.token_hex(8)
        partial = self.store.root / f".{MARK}.part"
        partial.write_text(self.mark + "\n")
        os.replace(partial, self.store.root / MARK)

    def about(self) -> dict:
        return {"root": str(self.store.root), "queue_size": self.store.queue_size, "db": self.db, "host": self.host,
                "output_dir": self.output_dir, "mark": self.mark}  # fmt: skip

    def call(self, method: str, args: tuple, kwargs: dict):
        if method.startswith("_") or method in LOCAL or not callable(getattr(JobStore, method, None)):
            raise AttributeError(f"the job store has no method {method!r} to call from a replica")
        # the store's refusal (a full queue, say) reaches the replica as it was raised: a MessageError
        # pickles with its id and parameters
        return getattr(self.store, method)(*args, **kwargs)

    def close(self) -> None:
        self.store.close()


class RemoteStore:
    """JobStore's interface on a replica, through the store's actor: each call runs on the store's
    node. Waiting is local (a change made through this replica wakes it at once; one made elsewhere is
    seen at the end of the wait). Uploaded files go as bytes: the actor writes them into the shared
    folder, where every node reads them."""

    def __init__(self, actor=None):
        self._actor = actor if actor is not None else ray.get_actor(STORE, namespace=NAMESPACE)
        about = ray.get(self._actor.about.remote(), timeout=120)
        self.root, self.queue_size, self.host = Path(about["root"]), about["queue_size"], about["host"]
        self._changed = threading.Condition()
        try:
            seen = (self.root / MARK).read_text().strip()
        except OSError:
            seen = None
        if seen != about["mark"]:
            raise ClusterError("cluster.not_shared", folder=about["output_dir"], hosts=socket.gethostname())

    def _call(self, method: str, *args, **kwargs):
        try:
            value = ray.get(self._actor.call.remote(method, args, kwargs))
        except RayTaskError as exc:  # the store's refusal, or a bug in it: raised here as the store raised it
            raise exc.cause from None
        except RayActorError:
            raise StoreError("cluster.store_gone", host=self.host) from None
        if method in CHANGES:
            with self._changed:
                self._changed.notify_all()
        return value

    def __getattr__(self, name: str):
        if name.startswith("_") or name in LOCAL or not callable(getattr(JobStore, name, None)):
            raise AttributeError(name)

        def call(*args, **kwargs):
            return self._call(name, *args, **kwargs)

        call.__name__ = call.__qualname__ = name
        call.__doc__ = getattr(JobStore, name).__doc__
        return call

    def submit(self, owner: str, form: dict, photo: Path | bytes, suffix: str = ".png", *, session: str | None = None,
               language: str = "en", others: dict[str, tuple[Path | bytes, str]] | None = None):  # fmt: skip
        """JobStore.submit, its files sent as bytes (a path here may be this node's alone)."""
        others = {name: (_bytes(data), data_suffix) for name, (data, data_suffix) in (others or {}).items()}
        return self._call("submit", owner, form, _bytes(photo), suffix, session=session, language=language,
                          others=others)  # fmt: skip

    def hold(self) -> None:
        raise RuntimeError("a shared store is held by nobody: give the pool lease_s (heartbeats) instead")

    def recover(self):
        raise RuntimeError("a shared store recovers by heartbeats: reclaim(lease_s), not recover()")

    def wait(self, timeout: float) -> None:
        """Wait until a job changes through this replica, or `timeout` seconds."""
        with self._changed:
            self._changed.wait(timeout)

    def close(self) -> None:
        """Nothing to close here: the store's actor outlives every replica."""


def _bytes(data: Path | bytes) -> bytes:
    return data if isinstance(data, bytes) else Path(data).read_bytes()


# ---------------------------------------------------------------------- the replicas
def replica_devices(settings, gpus: int) -> list:
    """The devices of one replica: the GPUs Ray gave it (it sets CUDA_VISIBLE_DEVICES to them, so
    they are cuda:0 to cuda:G-1 here); a CPU replica (`gpus` 0): I2V_DEVICES, else I2V_DEVICE, else "cpu"."""
    from i2v.hardware import DeviceSpec

    if gpus:
        return [DeviceSpec(f"cuda:{index}") for index in range(len(ray.get_gpu_ids()) or gpus)]
    if settings.devices:
        return settings.device_specs()
    return [DeviceSpec(settings.device or "cpu")]


@serve.deployment(name="studio", max_ongoing_requests=32, graceful_shutdown_timeout_s=30,
                  logging_config={"enable_access_log": False})  # fmt: skip
@serve.ingress()
class Replica:
    """One replica: a Hosting over the shared store, whose pool runs jobs on this replica's devices
    (heartbeats every lease_s / 4, reclaiming silent workers' jobs), with the REST API as its ingress."""

    def __init__(self, settings, gpus: int, replicas: int = 1):
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        from .hosting import make_hosting

        self.settings = settings
        specs = replica_devices(settings, gpus)
        self.hosting = make_hosting(settings, store=RemoteStore(), specs=specs, lease_s=settings.lease_s)
        self.hosting.workers = replicas * len(specs)  # queue positions count every replica's workers
        self.hosting.hold()  # a shared store: the jobs of workers silent for lease_s are queued again
        self.hosting.begin()
        log.info("replica %s:%d runs jobs on %s", socket.gethostname(), os.getpid(),
                 ", ".join(str(spec) for spec in specs))  # fmt: skip

    def __serve_build_asgi_app__(self):
        from fastapi import FastAPI

        from api import add_api

        settings = self.settings
        app = FastAPI(title="i2v studio API", docs_url="/api/docs", openapi_url="/api/openapi.json", redoc_url=None)
        add_api(app, self.hosting, tokens=settings.api_token_pairs(), page_has_users=settings.auth is not None,
                max_upload_mb=settings.max_upload_mb)  # fmt: skip
        return app

    def __del__(self):
        hosting = getattr(self, "hosting", None)
        if hosting is not None:  # Serve stops this replica: its running job goes back to the queue
            self.hosting = None
            hosting.close()


# ---------------------------------------------------------------------- `i2v serve --ray`
def connect(address: str) -> None:
    """Join the Ray cluster at `address` ("auto": the one this node belongs to; "HOST:PORT"; "ray://HOST:PORT"),
    or say that none answers there (Ray itself would wait minutes)."""
    if address not in ("auto", "") and not _answers(address):
        raise ClusterError("cluster.unreachable", address=address)
    try:
        ray.init(address=address or "auto", namespace=NAMESPACE, logging_level=logging.WARNING)
    except ConnectionError:
        raise ClusterError("cluster.unreachable", address=address) from None


def _answers(address: str) -> bool:
    """Something listens at `address` (HOST:PORT, ray://HOST:PORT; Ray's default ports without one)."""
    client = address.startswith("ray://")
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":") if ":" in target else (target, "", "10001" if client else "6379")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=5):
            return True
    except (OSError, ValueError):
        return False


def start_store(settings, address: str):
    """The store's actor, on this node (the one whose local disk holds the database), and what it says
    of itself; an actor left by an earlier run with the same database and folder is taken over."""
    node = ray.get_runtime_context().get_node_id()
    pinned = NodeAffinitySchedulingStrategy(node_id=node, soft=False)
    db, filesystem, host = ray.get(where_db.options(scheduling_strategy=pinned).remote(
        str(settings.store_db) if settings.store_db else None))  # fmt: skip
    if filesystem in NETWORK_FILESYSTEMS:
        raise ClusterError("cluster.db_on_network", db=db, filesystem=filesystem, host=host)
    try:
        actor = ray.get_actor(STORE, namespace=NAMESPACE)
    except ValueError:
        actor = None
    if actor is not None:
        about = ray.get(actor.about.remote(), timeout=60)
        if about["db"] != db or about["output_dir"] != str(settings.output_dir):
            raise ClusterError("cluster.other_store", db=about["db"], host=about["host"], folder=about["output_dir"],
                               address=address)  # fmt: skip
        return actor, about
    actor = ray.remote(StoreKeeper).options(
        name=STORE, namespace=NAMESPACE, lifetime="detached", scheduling_strategy=pinned, num_cpus=0,
        max_concurrency=16, max_restarts=-1).remote(str(settings.output_dir), settings.queue_size, db)  # fmt: skip
    return actor, ray.get(actor.about.remote(), timeout=120)


def check_shared(about: dict) -> None:
    """Every node of the cluster sees the store's mark in the output folder, or the nodes that do not are named."""
    nodes = [node["NodeID"] for node in ray.nodes() if node.get("Alive")]
    reads = [read_mark.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node, soft=False)).remote(
             about["root"]) for node in nodes]  # fmt: skip
    missing = sorted({host for host, mark in ray.get(reads, timeout=120) if mark != about["mark"]})
    if missing:
        raise ClusterError("cluster.not_shared", folder=about["output_dir"], hosts=", ".join(missing))


def plan_replicas(replicas: int | None, gpus: int, address: str) -> int:
    """How many replicas: as asked, or one per `gpus` GPUs of the cluster; refused when its GPUs are too few."""
    have = int(ray.cluster_resources().get("GPU", 0))
    if gpus == 0:
        return replicas or 1
    if have == 0:
        raise ClusterError("cluster.no_gpus", address=address)
    replicas = replicas or max(1, have // gpus)
    if replicas * gpus > have:
        raise ClusterError("cluster.too_few_gpus", replicas=replicas, gpus=gpus, needed=replicas * gpus, have=have)
    return replicas


def deploy(settings, replicas: int, gpus: int) -> None:
    """The REST API on Ray Serve: `replicas` replicas of `gpus` GPUs each (0: one CPU each), every node's
    proxy listening on the settings' host and port."""
    serve.start(proxy_location="EveryNode", http_options={"host": settings.host, "port": settings.port})
    resources = {"num_cpus": 1, "num_gpus": gpus} if gpus else {"num_cpus": 1}
    environment = {"env_vars": {"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True",  # as start_app.sh sets them
                                "GRADIO_ANALYTICS_ENABLED": "False"}}  # fmt: skip
    app = Replica.options(num_replicas=replicas, ray_actor_options={**resources, "runtime_env": environment})
    try:
        serve.run(app.bind(settings, gpus, replicas), name=APP, route_prefix="/")
    except RuntimeError as exc:  # a replica that failed to start
        raise ClusterError("cluster.not_started", reason=_why_not_started(exc)) from None


def _why_not_started(exc: RuntimeError) -> str:
    """The error a replica failed with, as one line (Serve keeps its traceback in the deployment's status;
    its last "SomeError: words" line is the replica's own), else Serve's words."""
    texts = [str(exc)]
    try:
        running = serve.status().applications.get(APP)
        texts += [deployment.message for deployment in running.deployments.values()] if running else []
    except Exception:  # noqa: BLE001 - Serve's own words are enough then
        pass
    said = [match.group(1) for text in texts
            for match in re.finditer(r"^\s*[\w.]*(?:Error|Exception): (.+)$", text, re.MULTILINE)
            if not match.group(1).startswith("Traceback")]  # fmt: skip
    return (said[-1] if said else texts[0].strip().splitlines()[-1] if texts[0].strip() else type(exc).__name__)[:400]


def stop(actor=None) -> bool:
    """The deployment deleted (its replicas queue their running jobs again), then the store's actor;
    Serve itself too when no other application runs on it (its port is free again). False when
    neither was running."""
    running = serve.status()
    deployed = APP in running.applications
    if deployed:
        serve.delete(APP)
    if running.proxies and not serve.status().applications:
        serve.shutdown()
    try:
        actor = actor if actor is not None else ray.get_actor(STORE, namespace=NAMESPACE)
    except ValueError:
        return deployed
    try:
        ray.get(actor.close.remote(), timeout=30)
    except Exception:  # noqa: BLE001 - killed all the same: SQLite's WAL keeps the file whole
        log.warning("the job store's actor did not close cleanly")
    ray.kill(actor, no_restart=True)
    return True


def main(settings, address: str, *, replicas: int | None = None, gpus: int = 1, stopping: bool = False) -> int:
    """`i2v serve --ray ADDRESS`: join the cluster, start the store's actor on this node, check that
    every node shares the output folder, deploy, say where the API listens, and serve until Ctrl-C or
    SIGTERM; `stopping`: stop what an earlier run left running. Raises ClusterError with words."""
    connect(address)
    try:
        if stopping:
            print(note("cluster.stopped" if stop() else "cluster.nothing_to_stop"), flush=True)
            return 0
        if settings.host not in ("127.0.0.1", "localhost", "::1") and settings.api_tokens is None:
            print(note("cluster.open", host=settings.host, port=settings.port), file=sys.stderr, flush=True)
        count = plan_replicas(replicas, gpus, address)
        actor, about = start_store(settings, address)
        try:
            check_shared(about)
            deploy(settings, count, gpus)
        except ClusterError:  # nothing half-started is left behind: the next run starts afresh
            stop(actor)
            raise
        host = settings.host if settings.host not in ("0.0.0.0", "::") else ray.util.get_node_ip_address()
        print(note("cluster.listening", url=f"http://{host}:{settings.port}/api/v1/jobs", replicas=count,
                   devices=f"{gpus} GPU" if gpus else "CPU", port=settings.port, db=about["db"], host=about["host"]),
              flush=True)  # fmt: skip
        ended = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: ended.set())
        while not ended.wait(1.0):
            pass
        print(note("cluster.stopping"), flush=True)
        stop(actor)
        return 0
    finally:
        ray.shutdown()
