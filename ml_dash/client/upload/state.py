"""What has reached the server, persisted beside the run's files in ``.ml-dash-sync.json``.

The server is the authority on what it stored (``GET …/streams``), but remembering its last answer locally lets a
restarted process or ``ml-dash sync`` resume without re-reading from offset 0, and it keeps the identities that make
retries idempotent: the stream ids (the server dedupes by ``(experiment, stream_id, offset)``) and each run's
``client_run_id`` (the server returns the same run for a retried create).

**One uploader identity per directory.** Every process that uploads a directory (the ranks of a job logging to one
experiment, a restarted run, ``ml-dash sync``) sends its streams under the same stream ids, so a byte range of a
file is always the same ``(stream_id, start)`` for the server, whichever process sends it, and the server's offset
check stores it once. The identity (the client id; stream ids derive from it) is claimed here and only here
(``claim_identity``): under an exclusive lock on ``.ml-dash-sync.lock`` beside the state file, the first process
writes a new id into the state file and every later one reads it from there.
"""
from __future__ import annotations

import contextlib
import os
import time
import uuid
from typing import Any, Iterator

import orjson

from ml_dash.format.layout import STREAMS, atomic_write, rank_suffix, stream_path, sync_lock_path, sync_state_path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt


def _load(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            data = orjson.loads(f.read())
        return data if isinstance(data, dict) else {}
    except (FileNotFoundError, orjson.JSONDecodeError):
        return {}


@contextlib.contextmanager
def _directory_lock(directory: str) -> Iterator[None]:
    """Exclusive between processes (and between two opens in one process) for the duration of the block; released by
    the kernel if the holder dies. Without a lock file (a read-only directory) the block runs unlocked: that process
    cannot save a state either, so it claims nothing others would read."""
    try:
        os.makedirs(directory, exist_ok=True)
        fd = os.open(sync_lock_path(directory), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield
        return
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        else:
            msvcrt.locking(fd, msvcrt.LK_LOCK, 1)  # retries for 10 s, then OSError: a claim takes milliseconds
        try:
            yield
        finally:
            if fcntl is None:
                os.lseek(fd, 0, os.SEEK_SET)
                msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    finally:
        os.close(fd)


def claim_identity(directory: str) -> dict:
    """The directory's sync state as saved, with a ``client_id``: the one already there, or, for the first process,
    a new one written to the state file before any other process can read it (see the module's docstring)."""
    path = sync_state_path(directory)
    data = _load(path)
    if data.get("client_id"):
        return data  # claimed before: the id never changes once written
    with _directory_lock(directory):
        data = _load(path)  # another process may have claimed it while we waited for the lock
        if not data.get("client_id"):
            data["client_id"] = uuid.uuid4().hex
            try:
                atomic_write(path, orjson.dumps(data, option=orjson.OPT_INDENT_2))
            except OSError:
                pass  # a read-only directory: nothing is saved there, so no other process reads another id
    return data


def run_job(meta: dict | None, run: dict) -> dict[str, Any] | None:
    """``{"job_id", "rank", "world_size"}`` of a run of the meta file's list, when it was a rank of a distributed job:
    its own entry says so; a meta written before entries did names the job of its latest run only."""
    source = run if run.get("job_id") is not None else \
        meta if meta and run.get("id") == meta.get("client_run_id") and meta.get("job_id") is not None else None
    if source is None:
        return None
    return {"job_id": source["job_id"], "rank": source.get("rank") or 0, "world_size": source.get("world_size") or 1}


class SyncState:
    """The sync state of one experiment directory. Only the uploader's thread (or ``ml-dash sync``) touches it."""

    def __init__(self, directory: str, rank: int = 0) -> None:
        self.directory = directory
        # A rank > 0 of a distributed job uploads its own files (metrics.rank-3.jsonl) under the directory's one
        # identity, with stream ids of its own, and keeps its own offsets and run (docs/distributed.md).
        self.rank = rank
        self.path = sync_state_path(directory, rank)
        data = claim_identity(directory)
        if rank:
            data = {**_load(self.path), "client_id": data["client_id"]}
        self.client_id: str = data["client_id"]
        self.remote: str | None = data.get("remote")
        self.experiment_id: str | None = data.get("experiment_id")
        self.acked: dict[str, int] = {s: int(data.get("acked", {}).get(s, 0)) for s in STREAMS}
        # Bumped when a stream's file was replaced or truncated behind our back: its content is then a new stream.
        self.generations: dict[str, int] = {s: int(data.get("generations", {}).get(s, 0)) for s in STREAMS}
        # Runs whose latest status the server may not know yet, oldest first; see ``Run``.
        self.runs: list[dict[str, Any]] = list(data.get("runs", []))
        # The metrics stream's run marks (format.branches): [offset, client run id], in file order, and the server's
        # id of every run registered: which run a byte range belongs to, even after the run left ``runs``.
        self.marks: list[list] = [list(m) for m in data.get("marks", [])]
        self.run_ids: dict[str, str] = dict(data.get("run_ids", {}))
        self.fork_sent: bool = bool(data.get("fork_sent"))
        # Uploaded files: relative path -> [size, mtime_ns], to skip files that did not change.
        self.files: dict[str, list[int]] = dict(data.get("files", {}))
        # What the server last acknowledged of the meta file's tags and notes: {"revision", "tags", "notes"}.
        annotations = data.get("annotations")
        self.annotations: dict[str, Any] = annotations if isinstance(annotations, dict) else {}
        # The ``captured_at`` of the run environment the server has (upload/environment.py); absent in older files.
        self.environment_sent: float | None = data.get("environment_sent")

    def stream_id(self, stream: str) -> str:
        """Stable for the life of the JSONL file: the server keys its offsets by it."""
        generation = self.generations[stream]
        return f"{self.client_id}:{stream}{rank_suffix(self.rank)}" + (f":{generation}" if generation else "")

    def stream_path(self, stream: str) -> str:
        """The file of ``stream`` this state uploads (its rank's)."""
        return stream_path(self.directory, stream, self.rank)

    def adopt_saved_offsets(self, streams: Any) -> None:
        """Move the offsets of ``streams`` up to what another process of this directory saved: the server acknowledged
        those bytes under the same stream ids, so there is no need to send them again. Only saves wasted requests:
        the server stays the authority, and an offset it no longer has is answered ``409`` with its own."""
        data = _load(self.path)
        if data.get("client_id") != self.client_id or data.get("remote") != self.remote:
            return
        acked, generations = data.get("acked") or {}, data.get("generations") or {}
        for stream in streams:
            if int(generations.get(stream, 0)) == self.generations[stream]:
                self.acked[stream] = max(self.acked[stream], int(acked.get(stream, 0)))

    def restart_stream(self, stream: str) -> None:
        """The file no longer extends what the server acknowledged: send it from offset 0 under a new stream id."""
        self.generations[stream] += 1
        self.acked[stream] = 0
        if stream == "metrics":
            self.marks = []
        self.save()

    def bind_remote(self, remote: str) -> None:
        """A different server knows nothing of what the last one acknowledged: start over for it."""
        remote = remote.rstrip("/")
        if self.remote not in (None, remote):
            self.experiment_id = None
            self.acked = {s: 0 for s in STREAMS}
            self.files = {}
            self.annotations = {}
            self.environment_sent = None
            self.run_ids, self.fork_sent = {}, False
            for run in self.runs:
                run["run_id"] = None
                run["sent_status"] = None
                run.pop("branch_sent", None)
        self.remote = remote

    # -- runs ---------------------------------------------------------------------------------------------------
    def new_run(self, started_at: float, hostname: str | None, client_run_id: str | None = None,
                job: dict[str, Any] | None = None) -> dict[str, Any]:
        """``job``: ``{"job_id", "rank", "world_size"}`` of a rank of a distributed job, sent when it registers."""
        run = self.find_run(client_run_id) if client_run_id else None
        if run is not None:
            return run  # already found through its mark
        run = {"client_run_id": client_run_id or uuid.uuid4().hex, "run_id": None, "started_at": started_at,
               "hostname": hostname, "status": "RUNNING", "error": None, "ended_at": None, "sent_status": None,
               **(job or {})}
        self.runs.append(run)
        self.save()
        return run

    def find_run(self, client_run_id: str) -> dict[str, Any] | None:
        return next((r for r in self.runs if r["client_run_id"] == client_run_id), None)

    def known_run(self, client_run_id: str, started_at: Any, hostname: Any, status: str = "FAILED",
                  error: str | None = "the run ended without a recorded status", ended_at: Any = None,
                  job: dict[str, Any] | None = None) -> dict | None:
        """A run learnt from the meta file's list or the stream's marks (logged offline): added in start order
        unless the server already has it; None then. ``job``: as for ``new_run``."""
        if client_run_id in self.run_ids:
            return None
        run = self.find_run(client_run_id)
        if run is None:
            run = {"client_run_id": client_run_id, "run_id": None, "started_at": started_at, "hostname": hostname,
                   "status": status, "error": error, "ended_at": ended_at, "sent_status": None, **(job or {})}
            self.runs.append(run)
            self.runs.sort(key=lambda r: r.get("started_at") or 0.0)
        return run

    def note_mark(self, offset: int, mark: dict) -> dict | None:
        """The metrics stream holds ``mark`` at ``offset``: remember it, and the run with its branch step."""
        run_id = mark.get("id")
        if not isinstance(run_id, str):
            return None
        if [offset, run_id] not in self.marks:
            self.marks.append([offset, run_id])
            self.marks.sort()
        run = self.find_run(run_id) or self.known_run(run_id, mark.get("started_at"), mark.get("hostname"))
        branch = mark.get("branch_step")
        if run is not None and type(branch) in (int, float) and "branch_step" not in run:
            run["branch_step"] = branch
        self.save()
        return run

    def adopt_meta_runs(self, meta: dict | None) -> None:
        """Every run the meta file lists (docs/branches.md) in start order, with its status: runs logged offline,
        or by a process that died before its uploader recorded them. A run that is not the last and still says
        running ended with its process."""
        listed = [r for r in (meta or {}).get("runs") or [] if isinstance(r, dict) and isinstance(r.get("id"), str)]
        for index, run in enumerate(listed):
            status, error = str(run.get("status") or "running").upper(), run.get("error")
            if status == "RUNNING" and index < len(listed) - 1:
                status, error = "FAILED", "the run's process ended without ending it (a later run began)"
            known = self.known_run(run["id"], run.get("started_at"), run.get("hostname"), status, error,
                                   run.get("completed_at"), run_job(meta, run))
            if known is not None and known["status"] == "RUNNING" and status in ("COMPLETED", "FAILED"):
                known.update(status=status, error=error, ended_at=run.get("completed_at"))
        self.save()

    def run_at(self, offset: int) -> str | None:
        """The client run id of the mark that governs the metrics byte ``offset``; before any mark, the oldest run's
        (a directory's first metrics carry no mark)."""
        found = self.runs[0]["client_run_id"] if self.runs else None
        for at, run_id in self.marks:
            if at > offset:
                break
            found = run_id
        return found

    def current_run(self) -> dict[str, Any] | None:
        return self.runs[-1] if self.runs else None

    def forget_finished_runs(self) -> None:
        """Keep only runs the server has not heard the last of, plus the latest (its id tags new batches)."""
        self.runs = [r for r in self.runs[:-1] if r["sent_status"] != r["status"]] + self.runs[-1:]

    # -- persistence ----------------------------------------------------------------------------------------------
    def save(self) -> None:
        data = {"client_id": self.client_id, "remote": self.remote, "experiment_id": self.experiment_id,
                "acked": self.acked, "generations": self.generations, "runs": self.runs, "files": self.files,
                "marks": self.marks, "run_ids": self.run_ids, "fork_sent": self.fork_sent,
                "annotations": self.annotations, "environment_sent": self.environment_sent, "saved_at": time.time()}
        try:
            atomic_write(self.path, orjson.dumps(data, option=orjson.OPT_INDENT_2))
        except OSError:
            pass  # the server still knows its offsets; losing this cache costs a resync, never data

    def pending_bytes(self) -> dict[str, int]:
        """Bytes of each stream's file the server has not acknowledged."""
        out = {}
        for stream in STREAMS:
            try:
                size = os.path.getsize(self.stream_path(stream))
            except FileNotFoundError:
                size = 0
            out[stream] = max(0, size - self.acked[stream])
        return out
