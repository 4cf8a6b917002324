"""``ml-dash sync PATH…``: the upload (``RunUpload``) of runs logged offline or interrupted, run to the end, resuming
exactly where the server stopped."""
from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field

import aiohttp
import orjson

from ml_dash.format.layout import FILES_DIR, META_FILE, STREAMS, meta_ranks, read_meta
from ml_dash.client.upload.crashed import crash_verdict, mark_meta_failed
from ml_dash.client.upload.http import ServerClient
from ml_dash.client.upload.retry import Backoff, GiveUp, Retrier
from ml_dash.client.upload.run_upload import Parked, RunUpload
from ml_dash.client.upload.state import SyncState, run_job


@dataclass
class SyncResult:
    path: str
    events: dict[str, int] = field(default_factory=dict)  # stored by the server in this sync, per stream
    files: int = 0
    statuses: list[str] = field(default_factory=list)
    run_status: str | None = None  # the latest run's status as the server now has it
    error: str | None = None
    rank: int = 0  # the rank of a distributed job whose streams these are (each rank is synced on its own)
    experiment_id: str | None = None
    marked_failed: str | None = None  # the error text, if this sync marked a crashed run FAILED
    note: str | None = None  # why a run whose meta says running was left RUNNING


def find_experiments(paths: list[str]) -> list[str]:
    """Experiment directories (those holding a meta file, rank 0's or another rank's) at or below each path, in a
    stable order."""
    found: list[str] = []
    for path in paths:
        path = os.path.abspath(path)
        if meta_ranks(path):
            found.append(path)
            continue
        for dirpath, dirnames, _filenames in os.walk(path):
            dirnames[:] = sorted(d for d in dirnames if d != FILES_DIR)  # an experiment's files/ holds no runs
            if meta_ranks(dirpath):
                found.append(dirpath)
    return list(dict.fromkeys(found))


def prepare_state(directory: str, rank: int = 0) -> tuple[SyncState, dict]:
    """The sync state of ``rank``'s streams (rank 0: a plain run's), reconciled with its meta file: the meta may know
    of a run (or its end) the uploader never saw (logged offline, or the process died before the uploader recorded the
    end). A rank's runs register with their job, as its live uploader registers them."""
    meta = read_meta(directory, strict=True, rank=rank)
    state = SyncState(directory, rank)
    started_at = meta.get("started_at")
    state.adopt_meta_runs(meta)
    if started_at is not None and not meta.get("runs"):
        run = state.current_run()
        if run is None or run.get("started_at") != started_at:
            run = state.new_run(started_at, meta.get("hostname"), job=run_job(meta, {"id": meta.get("client_run_id")}))
        status = (meta.get("status") or "").upper()
        if status in ("COMPLETED", "FAILED") and run["status"] == "RUNNING":
            run.update(status=status, error=meta.get("error"), ended_at=meta.get("completed_at"))
            state.save()
    return state, meta


async def _drain(upload: RunUpload) -> str | None:
    """Step until everything is on the server; the error that stopped it, or ``None``."""
    try:
        stalled = 0
        while True:
            behind = await upload.step()
            if not behind and upload.finished():
                return None
            stalled = 0 if behind else stalled + 1
            if stalled > 3:  # not behind yet not finished: nothing more this sync can do
                return "could not finish (see the log above)"
    except (Parked, GiveUp) as exc:
        return str(exc)


async def _end_if_crashed(upload: RunUpload, state: SyncState, meta: dict, result: SyncResult) -> None:
    """A run whose meta still says running after all its data is on the server: FAILED if its process is provably
    gone (locally in the meta file, then on the server, after the data), else a note saying why it stays RUNNING."""
    run = state.current_run()
    if meta.get("status") != "running" or run is None or run["started_at"] != meta.get("started_at"):
        return
    ended, why = crash_verdict(result.path, meta, "ml-dash sync")
    if ended is None:
        result.note = why
        return
    error, ended_at = ended
    if not mark_meta_failed(result.path, meta, error, ended_at):
        result.note = "its meta file changed or could not be written during the sync"
        return
    run.update(status="FAILED", error=error, ended_at=ended_at)
    state.save()  # a failed status push is sent by the next sync (the meta now says failed too)
    result.error = await _drain(upload)
    result.marked_failed = error


def recorded_remote(directory: str, rank: int = 0) -> str | None:
    """The server an experiment directory (a rank's streams of it) was last uploaded to, as ``.ml-dash-sync.json``
    (``.ml-dash-sync.rank-3.json``) records it."""
    try:
        return SyncState(directory, rank).remote
    except OSError:
        return None


async def _sync_all(targets: list[tuple[str, str | None]], token: str | None, progress, attempts: int,
                    backoff: Backoff, mark_crashed: bool = True) -> list[SyncResult]:
    results = []
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for directory, rank, remote in targets:
            result = SyncResult(directory, rank=rank)
            results.append(result)
            if not remote:
                result.error = NO_REMOTE
                continue
            try:
                state, meta = prepare_state(directory, rank)
            except (OSError, orjson.JSONDecodeError) as exc:
                result.error = f"unreadable meta file: {exc}"
                continue
            api = ServerClient(session, remote, token, lambda: Retrier(backoff=backoff, max_attempts=attempts))
            identity = {k: meta.get(k) for k in ("namespace", "workspace", "prefix", "directory", "readme", "hostname",
                                                 "environment")}
            upload = RunUpload(api, state, identity, on_acked=lambda stream, n: progress.update(max(0, n)))
            result.error = await _drain(upload)
            if mark_crashed and result.error is None:
                await _end_if_crashed(upload, state, meta, result)
            result.events = dict(upload.sent)
            result.files = upload.files_sent
            result.statuses = upload.statuses_sent
            result.experiment_id = state.experiment_id
            run = state.current_run()
            result.run_status = run["sent_status"] if run else None
    return results


NO_REMOTE = "no server given and none recorded (use --remote URL or set ML_DASH_REMOTE or ML_LOGGER_REMOTE)"


def sync_paths(paths: list[str], remote: str | None = None, token: str | None = None, show_progress: bool = True,
               attempts: int = 8, backoff: Backoff | None = None, mark_crashed: bool = True) -> list[SyncResult]:
    """Upload every experiment under ``paths`` to ``remote``; returns one result per experiment.

    Without ``remote``, each experiment goes to the server its ``.ml-dash-sync.json`` records (the one it was logged
    to); one that records none gets an error result. With ``mark_crashed``, a run whose meta says running but whose
    process on this host is provably gone is marked FAILED (locally and on the server) once its data is uploaded;
    see ``_crashed``."""
    from tqdm import tqdm

    targets = []
    total = 0
    # Every rank of a distributed job logged into the directory: each has its own streams, sync state and runs.
    for directory, rank in [(d, r) for d in find_experiments(paths) for r in meta_ranks(d)]:
        target = remote or recorded_remote(directory, rank)
        targets.append((directory, rank, target))
        if not target:
            continue
        try:
            state = SyncState(directory, rank)
            if state.remote not in (None, target.rstrip("/")):
                state.bind_remote(target)
            total += sum(state.pending_bytes().values())
        except OSError:
            pass
    with tqdm(total=total, unit="B", unit_scale=True, desc="ml-dash sync", disable=not show_progress) as bar:
        return asyncio.run(_sync_all(targets, token, bar, attempts, backoff or Backoff(base=0.5, cap=10.0),
                                       mark_crashed))


def format_summary(results: list[SyncResult]) -> str:
    if not results:
        return f"ml-dash sync: no experiments found (looked for {META_FILE})"
    lines = []
    header = f"{'experiment':<48} " + " ".join(f"{s:>10}" for s in STREAMS) + f" {'files':>6} {'run status':>11}  result"
    lines.append(header)
    for r in results:
        path = r.path + (f" [rank {r.rank}]" if r.rank else "")
        name = path if len(path) <= 48 else "…" + path[-47:]
        counts = " ".join(f"{r.events.get(s, 0):>10}" for s in STREAMS)
        lines.append(f"{name:<48} {counts} {r.files:>6} {str(r.run_status or '-'):>11}  {r.error or 'ok'}")
    for r in results:
        if r.marked_failed:
            lines.append(f"marked FAILED: {r.path}: {r.marked_failed}")
        elif r.note:
            lines.append(f"left RUNNING: {r.path}: {r.note}")
    sent = sum(sum(r.events.values()) for r in results)
    failed = sum(1 for r in results if r.error)
    marked = sum(1 for r in results if r.marked_failed)
    lines.append(f"{len(results)} experiment(s), {sent} events and {sum(r.files for r in results)} files sent, "
                 f"{failed} failed" + (f", {marked} crashed run(s) marked FAILED" if marked else ""))
    return "\n".join(lines)
