"""`i2v batch FILE.jsonl`: many videos from a file, one job per line, through the studio's job store
on this machine, or with `--server URL --token T` through a running server's REST API.

A line is a JSON object: GenerationRequest's knobs by name (studio/jobspec.py), `image` the path of
a photo relative to the file (and so an end photo's, keyframes', references' `image` (a photo or an
MP4 clip) and a `soundtrack`'s), `refine: true` to refine the prompt first. Progress goes to stderr; a
summary JSON (per line: job id, status, output path, seconds, error) is rewritten after every line,
so a batch that was stopped resumes where it stopped when it is run again: done lines are skipped,
a job still queued or running is waited for, not submitted twice.

Locally the batch runs its own worker on the output folder's store, and refuses when a running
server holds that store (use --server then).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys
import time
from pathlib import Path

from pydantic import ValidationError

from .jobspec import JobIn, files_of, form_of
from .store import ENDED, media_type

EXIT_FAILED, EXIT_BAD_INPUT = 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="i2v batch", description="Run a JSONL file of video jobs, resumably.")
    parser.add_argument("file", type=Path, help="one JSON request per line; photo paths relative to the file")
    parser.add_argument("--server", help="a running studio's URL (http://host:7860): send the jobs there")
    parser.add_argument("--token", default=os.environ.get("I2V_TOKEN"), help="the server's API token (or I2V_TOKEN)")
    parser.add_argument("--summary", type=Path, help="the summary JSON (default: FILE.summary.json beside it)")
    parser.add_argument("--videos", type=Path, help="with --server: where downloaded videos go (default: FILE-videos/)")
    return parser


def read_lines(path: Path) -> list[dict]:
    """The file's jobs: (line number, JobIn or the error that line has, the photo's path)."""
    lines = []
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        entry = {"line": number, "job": None, "photo": None, "others": {}, "error": None,
                 "fingerprint": hashlib.sha256(text.strip().encode()).hexdigest()[:16]}  # fmt: skip
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("a line must be a JSON object")
            image = data.pop("image", None)
            if not image:
                raise ValueError("'image' (a photo path relative to the file) is missing")
            entry["photo"] = (path.parent / image).resolve()
            if not entry["photo"].is_file():
                raise ValueError(f"photo {image} is not there")
            entry["job"] = JobIn.model_validate(data)
            entry["others"] = {}
            # the end photo, keyframes, references and the soundtrack: beside the file too
            for name, other in files_of(entry["job"]).items():
                entry["others"][name] = (path.parent / other).resolve()
                if not entry["others"][name].is_file():
                    kind = "file" if name.startswith("reference_") or name == "soundtrack" else "photo"
                    raise ValueError(f"{kind} {other} is not there")
        except (ValueError, ValidationError) as exc:
            entry["error"] = _one_line(exc)
        lines.append(entry)
    return lines


def _as_data_url(path: Path) -> str:
    """A photo, clip or soundtrack beside the batch file, as the API takes it."""
    return f"data:{media_type(path.suffix)};base64," + base64.b64encode(path.read_bytes()).decode()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not args.file.is_file():
        print(f"i2v batch: error: {args.file} is not a file", file=sys.stderr)
        return EXIT_BAD_INPUT
    summary_path = args.summary or args.file.with_name(args.file.name + ".summary.json")
    summary = _load(summary_path)
    lines = read_lines(args.file)
    try:
        runner = ServerRunner(args.server, args.token, args.videos or args.file.with_name(args.file.stem + "-videos")) \
            if args.server else LocalRunner()  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - the store held by a server, settings that do not validate
        print(f"i2v batch: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return _run(args, lines, summary, summary_path, runner)
    except ServerGone as exc:
        print(f"i2v batch: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        runner.close()


def _run(args, lines: list[dict], summary: dict, summary_path: Path, runner) -> int:
    """Each line in turn: skipped when done before, waited for when its job is still in the queue,
    else submitted; the summary is rewritten after each."""
    failed = 0
    # A line is known by its text (and, for the same text twice, which time it is): one moved by an
    # edit of the file is still done, and a new line above it is not mistaken for it.
    previous = {row.get("fingerprint"): row for row in summary.values() if row.get("fingerprint")}
    summary.clear()
    seen: dict[str, int] = {}
    for index, entry in enumerate(lines, start=1):
        seen[entry["fingerprint"]] = seen.get(entry["fingerprint"], 0) + 1
        key, fingerprint = str(entry["line"]), f"{entry['fingerprint']}.{seen[entry['fingerprint']]}"
        before = previous.get(fingerprint, {})
        tag = f"[{index}/{len(lines)}] line {entry['line']}"
        if before.get("status") == "done" and before.get("output") and Path(before["output"]).is_file():
            print(f"{tag}: done before, skipped", file=sys.stderr)
            summary[key] = before
            _save(summary_path, summary)
            continue
        if entry["error"]:
            summary[key] = {"job": None, "status": "failed", "output": None, "seconds": None, "error": entry["error"]}
        else:
            job_id = before.get("job") if before.get("status") in ("queued", "running", "interrupted") else None
            summary[key] = runner.run(
                entry, job_id, lambda row, key=key: _save(summary_path, {**summary, key: {**row, "fingerprint": fingerprint}}),
                lambda text, tag=tag: print(f"{tag}: {text}", file=sys.stderr))  # fmt: skip
        summary[key]["fingerprint"] = fingerprint
        row = summary[key]
        failed += row["status"] != "done"
        print(f"{tag}: {row['status']}" + (f" in {row['seconds']} s -> {row['output']}" if row["status"] == "done"
                                            else f": {row['error']}" if row.get("error") else ""), file=sys.stderr)  # fmt: skip
        _save(summary_path, summary)
    print(json.dumps({"summary": str(summary_path), "lines": len(lines), "failed": failed}))
    return EXIT_FAILED if failed else 0


class LocalRunner:
    """This machine's studio, with its own worker on the output folder's store (I2V_* settings)."""

    def __init__(self):
        from settings import Settings

        from .hosting import make_hosting

        self.hosting = make_hosting(Settings())
        self.hosting.start()  # refused when a running server holds the store

    def run(self, entry: dict, job_id: str | None, save, say) -> dict:
        from .hosting import ANYONE

        hosting = self.hosting
        job = hosting.store.get(job_id) if job_id else None
        if job is None:
            try:
                others = {name: (other, other.suffix) for name, other in entry["others"].items()}
                job = hosting.submit(form_of(entry["job"], hosting.studio.default_model()), ANYONE, "en",
                                     photo=entry["photo"], others=others)  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - a bad value of this line, said, and the batch goes on
                return {"job": None, "status": "failed", "output": None, "seconds": None,
                        "error": hosting.studio.explain(exc, "en") or _one_line(exc)}  # fmt: skip
        save({"job": job.id, "status": job.status, "output": None, "seconds": None, "error": None})

        def moved(job) -> None:
            if job.stage in ("denoising", "rendering") and job.total:
                say(f"{job.stage} {job.step}/{job.total}")

        job_id = job.id
        job = hosting.wait(job_id, moved)
        if job is None:  # removed before it could be read (retention smaller than one video)
            return {"job": job_id, "status": "failed", "output": None, "seconds": None,
                    "error": "the job was removed (I2V_KEEP_GB / I2V_KEEP_DAYS) before its result was read"}  # fmt: skip
        return {"job": job.id, "status": job.status, "output": job.video, "seconds": job.seconds,
                "error": job.error["text"] if job.error else None}  # fmt: skip

    def close(self) -> None:
        self.hosting.close()


class ServerRunner:
    """A running server's REST API."""

    def __init__(self, url: str, token: str | None, videos: Path):
        import httpx

        self.http = httpx.Client(base_url=url.rstrip("/"), timeout=60,
                                 headers={"Authorization": f"Bearer {token}"} if token else {})  # fmt: skip
        self.videos = videos
        reply = self.http.get("/api/v1/models")
        if reply.status_code != 200:
            raise RuntimeError(f"{url}: {reply.status_code} {_detail(reply)}")

    def run(self, entry: dict, job_id: str | None, save, say) -> dict:
        import httpx

        job = self._poll(job_id, say) if job_id else None
        if not job:  # a new line, or its job is gone from the server: submitted (again)
            body = entry["job"].model_dump(exclude_none=True)
            photo = entry["photo"]
            body["image"] = _as_data_url(photo)
            if "last_image" in entry["others"]:
                body["last_image"] = _as_data_url(entry["others"]["last_image"])
            for index, keyframe in enumerate(body.get("keyframes") or []):
                keyframe["image"] = _as_data_url(entry["others"][f"keyframe_{index}"])
            for index, reference in enumerate(body.get("references") or [], start=1):
                reference["image"] = _as_data_url(entry["others"][f"reference_{index}"])
            if "soundtrack" in entry["others"]:
                body["soundtrack"] = _as_data_url(entry["others"]["soundtrack"])
            while True:
                try:
                    reply = self.http.post("/api/v1/jobs", json=body)
                except httpx.HTTPError as exc:
                    raise ServerGone(f"could not send the job ({type(exc).__name__}); run again to resume") from None
                if reply.status_code != 503:  # a full queue: wait for room
                    break
                say("the server's queue is full; waiting")
                time.sleep(5)
            if reply.status_code != 202:
                return {"job": None, "status": "failed", "output": None, "seconds": None, "error": _detail(reply)}
            job = reply.json()
        save({"job": job["id"], "status": job["status"], "output": None, "seconds": None, "error": None})
        seen = None
        while job["status"] not in ENDED:
            progress = job.get("progress") or {}
            state = (job["status"], progress.get("stage"), progress.get("step"))
            if state != seen and progress.get("total"):
                say(f"{progress['stage']} {progress['step']}/{progress['total']}")
            seen = state
            time.sleep(1.0)
            job = self._poll(job["id"], say) or {"id": job["id"], "status": "failed",
                                                 "error": {"text": "the job was deleted on the server"}}  # fmt: skip
        output = None
        if job["status"] == "done":
            self.videos.mkdir(parents=True, exist_ok=True)
            name = Path(str(job["result"]["video"].get("file") or "")).name  # a name from the server: never a path
            output = self.videos / (name if name.endswith(".mp4") and not name.startswith(".") else f"{job['id']}.mp4")
            partial = output.with_name(f".{output.name}.part")
            try:
                with self.http.stream("GET", f"/api/v1/jobs/{job['id']}/video") as reply, partial.open("wb") as out:
                    reply.raise_for_status()
                    for chunk in reply.iter_bytes():
                        out.write(chunk)
            except httpx.HTTPError as exc:
                partial.unlink(missing_ok=True)
                raise ServerGone(f"could not download the video ({type(exc).__name__}); run again to resume") from None
            os.replace(partial, output)
        error = job.get("error") or {}
        return {"job": job["id"], "status": job["status"], "output": str(output) if output else None,
                "seconds": job.get("seconds"), "error": error.get("text")}  # fmt: skip

    def _poll(self, job_id: str, say, patience: float = 600.0) -> dict:
        """The job as the server has it now; while the server does not answer (a restart), wait for
        it up to `patience` seconds, then stop with one line (a later run resumes)."""
        import httpx

        deadline = time.monotonic() + patience
        while True:
            try:
                reply = self.http.get(f"/api/v1/jobs/{job_id}")
                if reply.status_code == 200:
                    return reply.json()
                if reply.status_code == 404:  # deleted on the server (by its owner, or retention)
                    return {}
                if 400 <= reply.status_code < 500:  # a wrong token, say: waiting would not mend it
                    raise ServerGone(f"{reply.status_code} {_detail(reply)}")
                problem = f"{reply.status_code} {_detail(reply)}"
            except httpx.HTTPError as exc:
                problem = type(exc).__name__
            if time.monotonic() > deadline:
                raise ServerGone(f"the server did not answer for {patience:.0f} s ({problem}); run again to resume")
            say(f"the server does not answer ({problem}); waiting for it")
            time.sleep(5)

    def close(self) -> None:
        self.http.close()


class ServerGone(Exception):
    """The server stopped answering while a batch waited on it."""


def _load(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {str(row["line"]): row for row in data.get("lines", [])}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _save(path: Path, summary: dict) -> None:
    """The summary, written whole to a partial file and renamed into place."""
    rows = [{**row, "line": int(key)} for key, row in sorted(summary.items(), key=lambda item: int(item[0]))]
    partial = path.with_name(f".{path.name}.part")
    partial.write_text(json.dumps({"lines": rows}, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(partial, path)


def _detail(reply) -> str:
    try:
        detail = reply.json().get("detail")
    except ValueError:
        return f"HTTP {reply.status_code}"
    if isinstance(detail, list):  # FastAPI's 422: field and rule
        return "; ".join(f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg')}" for d in detail)
    return str(detail)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
