"""The background uploader: one thread per process running an asyncio loop with one ``aiohttp`` session, shared by
every remote experiment of the process.

It never touches the training loop's data structures: it reads what the writer thread has already made durable in
the JSONL files, by byte offset, and the writer only wakes it (the sink's ``after_write``). Each experiment gets a task that
sends a round of batches, then pauses about ``ML_DASH_UPLOAD_INTERVAL`` seconds per request it made (so ≤ ~1
request/s per run in steady state), and skips the pause while it is behind (batches are then full-size).
"""
from __future__ import annotations

import asyncio
import atexit
import logging
import os
import socket
import threading
import time
import weakref
from typing import Any

import aiohttp

from ml_dash import settings
from ml_dash.client.upload.crashed import previous_run_crashed
from ml_dash.client.upload.http import ServerClient
from ml_dash.client.upload.retry import Backoff, Retrier, RetryableError
from ml_dash.client.upload.run_upload import Parked, RunUpload, changed_files
from ml_dash.client.upload.state import SyncState
from ml_dash.format.layout import files_path

logger = logging.getLogger("ml_dash")
SLICE = 1.0  # seconds: run_ended looks at the upload's progress this often


def upload_settings() -> dict[str, Any]:
    return {
        "token": settings.TOKEN.get() or None,
        "timeout": settings.UPLOAD_TIMEOUT.get(),  # how long complete() waits for the upload
        "interval": settings.UPLOAD_INTERVAL.get(),  # seconds per request in steady state
        "connect_wait": settings.CONNECT_WAIT.get(),  # how long the constructor waits for the ids
        "max_events": settings.UPLOAD_BATCH_EVENTS.get(),
        "max_bytes": settings.UPLOAD_BATCH_BYTES.get(),
        "window": settings.UPLOAD_WINDOW.get(),  # batches of one stream in flight at most
        "retry_base": settings.RETRY_BASE.get(),
        "retry_cap": settings.RETRY_CAP.get(),
        "heartbeat": settings.HEARTBEAT_INTERVAL.get(),  # seconds between heartbeats of an open run
    }


class RemoteRun:
    """What ``Experiment`` holds: the link between one experiment and the uploader."""

    def __init__(self, uploader: "Uploader", exp: Any, settings: dict[str, Any]) -> None:
        self.uploader = uploader
        self.settings = settings
        self.remote = exp.remote.rstrip("/")
        self.path = exp.local_path
        self.wake = asyncio.Event()
        self.wake_requested = False  # set by the writer thread so it schedules at most one wake per round
        self.ending = False
        self.end_requested = asyncio.Event()  # cuts the steady-state pause short: complete() is waiting
        self.connected = threading.Event()  # the experiment id is known, or the first attempt failed
        self.finished = threading.Event()  # everything, final status included, is on the server
        self.parked: str | None = None
        self.failing = False  # the last attempt failed and none has succeeded since (run_ended stops waiting)
        self.started = False  # the task runs: the experiment is registered only once a run starts
        self.exp_ref = weakref.ref(exp)

        def on_ids(experiment_id: str | None, run_id: str | None) -> None:
            exp = self.exp_ref()
            if exp is not None:
                exp.set_remote_ids(experiment_id, run_id)

        self.api = ServerClient(uploader.session, self.remote, settings["token"], self._retrier)
        identity = {"namespace": exp.namespace, "workspace": exp.workspace, "prefix": exp.prefix,
                    "directory": exp.directory, "readme": exp.readme, "hostname": socket.gethostname(),
                    "fork": exp.fork}
        rank = exp.rank_info
        self.job = {"job_id": rank.job_id, "rank": rank.rank, "world_size": rank.world_size} if rank.distributed \
            else None
        self.run_upload = RunUpload(self.api, SyncState(self.path, rank.rank), identity, settings["max_events"],
                                    settings["max_bytes"], on_ids=on_ids, window=settings["window"])
        self.run_upload.heartbeats = True

    def _retrier(self) -> Retrier:
        backoff = Backoff(base=self.settings["retry_base"], cap=self.settings["retry_cap"])
        return Retrier(backoff=backoff, on_failure=self._on_failure)

    def _on_failure(self, error: RetryableError, failures: int, delay: float) -> None:
        self.failing = True
        self.connected.set()  # run_started stops waiting at the first failure
        self.uploader.report_failure(self.remote, error, delay)

    # -- called from the user's thread ------------------------------------------------------------------------
    def run_started(self, started_at: float, previous_meta: dict | None = None,
                    client_run_id: str | None = None) -> None:
        """A run starts; ``previous_meta``: the meta file as it was just before, to end a predecessor whose process
        died (its verdict is taken here, before the new run's first write changes the directory)."""
        crashed = previous_run_crashed(self.path, previous_meta) if previous_meta else None
        self.finished.clear()
        self.uploader.call_soon(self._on_started, started_at, crashed, client_run_id, previous_meta)
        if not self.started:  # registered on the server now, not when the Experiment was constructed
            self.started = True
            self.uploader.start(self)
            # Briefly wait for the experiment id (milliseconds on a healthy server); never long, never on failure.
            self.connected.wait(self.settings["connect_wait"])

    def annotations_changed(self) -> None:
        """``exp.tags`` / ``exp.notes`` changed (the meta file says how): the next round sends them."""
        self.uploader.call_soon(self.wake.set)

    def environment_captured(self, environment: dict[str, Any]) -> None:
        """The run's environment is in the meta file (called on the capture's helper thread): send it."""
        self.uploader.call_soon(self._on_environment, environment)

    def _on_environment(self, environment: dict[str, Any]) -> None:
        self.run_upload.environment = environment
        self.wake.set()

    def run_ended(self, status: str, error: str | None) -> None:
        """Wait for the upload up to ``ML_DASH_UPLOAD_TIMEOUT``, and only while it makes progress; then say what is
        pending and return. A server never reached is not waited for (a sweep of runs would lose the timeout each)."""
        if self.parked:
            return  # the server refused this run; the error was reported when it happened
        self.finished.clear()
        self.uploader.call_soon(self._on_ended, status.upper(), error, time.time())
        timeout = self.settings["timeout"]
        if not self.wait_while_progressing(timeout) or self.parked:
            return
        if not self.run_upload.ready:
            logger.warning("ml-dash: the server at %s was never reached; the run is complete locally and "
                           "`ml-dash sync %s` sends it later", self.remote, self.path)
            return
        pending = self.run_upload.state.pending_bytes()
        parts = [f"{n} bytes of {stream}" for stream, n in pending.items() if n]
        try:
            n_files = len(changed_files(files_path(self.path), dict(self.run_upload.state.files)))
        except RuntimeError:  # the dict changed under us; the count is only informative
            n_files = 0
        if n_files:
            parts.append(f"{n_files} file(s)")
        parts.append("the run's final status")
        pending_text = ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]
        why = "the server stopped answering" if self.failing else f"after {timeout:.3g}s"
        logger.warning("ml-dash: upload to %s not finished (%s): %s still to send. Nothing is lost (it is on "
                       "disk); the upload goes on while this process runs, and `ml-dash sync %s` finishes it.",
                       self.remote, why, pending_text, self.path)

    def wait_while_progressing(self, timeout: float) -> bool:
        """Wait for ``finished`` up to ``timeout``; ``True`` if it did not come. Gives up at once when the server was
        never reached, and after a slice in which attempts failed and nothing was acknowledged."""
        self.connected.wait(timeout)  # set by the first answer or the first failure
        deadline = time.monotonic() + timeout
        while not self.finished.is_set():
            if self.parked or (self.failing and not self.run_upload.ready):
                return not self.finished.is_set()
            acked = sum(self.run_upload.state.acked.values())
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.finished.wait(min(remaining, SLICE)):
                return not self.finished.is_set()
            if self.failing and sum(self.run_upload.state.acked.values()) == acked:
                return True  # the server went away: nothing moved while attempts failed
        return False

    # -- on the uploader's loop -------------------------------------------------------------------------------
    def _on_started(self, started_at: float, crashed: tuple[float, str, float] | None,
                    client_run_id: str | None = None, previous_meta: dict | None = None) -> None:
        self.ending = False
        self.end_requested.clear()
        self.run_upload.state.adopt_meta_runs(previous_meta)  # earlier runs this uploader never saw (offline, killed)
        previous = self.run_upload.state.current_run()
        if crashed and previous is not None and previous["status"] == "RUNNING" and previous["started_at"] == crashed[0]:
            previous.update(status="FAILED", error=crashed[1], ended_at=crashed[2])  # sent after its data, as usual
        self.run_upload.state.new_run(started_at, socket.gethostname(), client_run_id, self.job)
        self.run_upload.retry_refused()
        self.wake.set()

    def _on_ended(self, status: str, error: str | None, ended_at: float) -> None:
        run = self.run_upload.state.current_run()
        if run is not None:
            run.update(status=status, error=error, ended_at=ended_at)
            self.run_upload.state.save()
        self.ending = True
        self.end_requested.set()
        self.wake.set()

    async def heartbeats(self) -> None:
        """Every ``ML_DASH_HEARTBEAT_INTERVAL`` seconds while the process lives: the open run is alive. Nothing stops
        it but the process's end, so a ``kill -9`` is exactly what makes the server's CRASHED verdict (after
        ``ML_DASH_CRASH_AFTER`` on the server) fire."""
        while True:
            await asyncio.sleep(self.settings["heartbeat"])
            try:
                await self.run_upload.heartbeat()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001  (the next beat tries again; uploads report connection trouble)
                logger.debug("ml-dash: a heartbeat for %s failed", self.path, exc_info=True)

    async def main(self) -> None:
        failures = 0
        while True:
            # Reset before reading the files: an append after this point schedules another round.
            self.wake.clear()
            self.wake_requested = False
            requests_before = self.api.requests
            try:
                behind = await self.run_upload.step()
                failures = 0
            except Parked as error:
                self.failing = False
                self.parked = str(error)
                logger.error("ml-dash: stopped uploading %s: %s", self.path, error)
                self.connected.set()
                self.finished.set()
                return
            except Exception:  # a bug or a local I/O error: keep going, but never spin
                failures += 1
                logger.exception("ml-dash: upload round for %s failed", self.path)
                await asyncio.sleep(min(30.0, 0.5 * 2 ** min(failures, 6)))
                continue
            self.failing = False
            if self.run_upload.ready:
                self.connected.set()
                self.uploader.report_success(self.remote)
            if self.ending and not behind and self.run_upload.finished():
                self.finished.set()
            if behind:
                await asyncio.sleep(0)  # next full batch at once (but let other runs' tasks in)
                continue
            if self.ending and not self.finished.is_set():
                await _wait(self.wake, 0.05)  # complete() is waiting: no pacing, but never a busy loop
                continue
            pause = self.settings["interval"] * max(1, self.api.requests - requests_before)
            await _wait(self.end_requested, pause)
            await _wait(self.wake, 5.0)  # new data, the run's end, or time to look for newly saved files


async def _wait(event: asyncio.Event, timeout: float) -> None:
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except asyncio.TimeoutError:
        pass


class Uploader:
    """The process's upload thread and its session."""

    def __init__(self, pipeline: Any, sink: Any) -> None:
        self.pid = os.getpid()
        self.pipeline = pipeline
        self.loop = asyncio.new_event_loop()
        self.session: aiohttp.ClientSession | None = None
        self.by_store: dict[Any, RemoteRun] = {}
        self.by_path: dict[str, RemoteRun] = {}
        self.tasks: set[asyncio.Task] = set()
        self.warned: set[str] = set()
        self.closed = False
        ready = threading.Event()
        self.thread = threading.Thread(target=self._thread_main, args=(ready,), name="ml-dash-uploader", daemon=True)
        self.thread.start()
        ready.wait()
        sink.after_write.append(self._after_write)
        atexit.register(self.close)

    def _thread_main(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)

        async def open_session() -> None:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=120)
            self.session = aiohttp.ClientSession(timeout=timeout)

        self.loop.run_until_complete(open_session())
        ready.set()
        self.loop.run_forever()

    def call_soon(self, callback: Any, *args: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            pass  # the loop is closed: the process is exiting

    def attach(self, exp: Any) -> RemoteRun:
        key = (exp.local_path, exp.rank_info.rank)  # the ranks of a job in one directory upload apart
        existing = self.by_path.get(key)
        if existing is not None and existing.remote == exp.remote.rstrip("/") and not existing.parked:
            # The same directory again (a new Experiment object for a re-run): one task and one state per directory,
            # so two tasks never race over the same offsets.
            existing.exp_ref = weakref.ref(exp)
            self.by_store[exp.store_key] = existing
            state = existing.run_upload.state
            exp.set_remote_ids(state.experiment_id if existing.run_upload.ready else None, None)
            return existing
        run = RemoteRun(self, exp, upload_settings())
        self.by_store[exp.store_key] = run
        self.by_path[key] = run
        return run  # its task starts with the first run (RemoteRun.run_started)

    def start(self, run: RemoteRun) -> None:
        def start() -> None:
            for coroutine in (run.main(), run.heartbeats()):
                task = self.loop.create_task(coroutine)
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)

        self.call_soon(start)

    def detach_all(self) -> None:
        """Stop every run's task (tests use it so one test's retries do not outlive it)."""
        self.by_store.clear()
        self.by_path.clear()

        def cancel() -> None:
            for task in list(self.tasks):
                task.cancel()

        self.call_soon(cancel)

    def _after_write(self, touched: set) -> None:
        # Runs on the writer thread: only flag and wake, no I/O.
        if self.closed or os.getpid() != self.pid:
            return
        for store in touched:
            run = self.by_store.get(store)
            if run is not None and not run.wake_requested:
                run.wake_requested = True
                self.call_soon(run.wake.set)

    def report_failure(self, remote: str, error: RetryableError, delay: float) -> None:
        if remote not in self.warned:
            self.warned.add(remote)
            logger.warning("ml-dash: cannot reach the server at %s (%s); the run goes on locally and the upload "
                           "keeps retrying in the background", remote, error)
        else:
            logger.debug("ml-dash: %s; retrying in %.2fs", error, delay)

    def report_success(self, remote: str) -> None:
        if remote in self.warned:
            self.warned.discard(remote)
            logger.info("ml-dash: the server at %s is reachable again; uploading", remote)

    def close(self) -> None:
        """At exit: let open runs finish (bounded), then stop the loop so no thread dies mid-request."""
        if self.closed or os.getpid() != self.pid:
            return
        self.pipeline.exit_drain()  # flush and finalise open runs first, whichever atexit handler runs first
        self.closed = True

        async def shutdown() -> None:
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            if self.session is not None:
                await self.session.close()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(2.0)
        except Exception:
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(2.0)


_UPLOADER: Uploader | None = None
_LOCK = threading.Lock()


def attach_uploader(exp: Any, pipeline: Any, sink: Any) -> RemoteRun:
    """Start (once per process) the upload thread and register ``exp`` with it. Returns quickly.

    ``pipeline`` and ``sink`` are the process's (``ml_dash.client.wiring``): the uploader drains the one at exit and is woken
    by the other's ``after_write``."""
    global _UPLOADER
    with _LOCK:
        if _UPLOADER is None or _UPLOADER.pid != os.getpid():  # a forked child gets its own thread
            _UPLOADER = Uploader(pipeline, sink)
        uploader = _UPLOADER
    return uploader.attach(exp)


def detach_all() -> None:
    """Stop uploading for every experiment of this process (used by tests between cases)."""
    if _UPLOADER is not None and _UPLOADER.pid == os.getpid():
        _UPLOADER.detach_all()

