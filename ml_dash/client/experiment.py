"""``Experiment``: identity, directory layout, run lifecycle and the ``.ml-logger.meta.json`` file."""
from __future__ import annotations

import functools
import inspect
import logging
import os
import sys
import threading
import time
from typing import Any, Callable

from ml_dash.client import sigterm as _sigterm
from ml_dash.client.annotations import Tags, set_notes
from ml_dash.client.run.console import console_settings, start_console
from ml_dash.client.run.environment import EnvironmentCapture, environment_settings
from ml_dash.format.branches import check_branch, check_fork, end_mark, start_mark
from ml_dash.client.events import RUN_STREAM, record_event, register_store
from ml_dash.client.files import FileManager
from ml_dash.client.logs import LogManager
from ml_dash.client.media.manager import MediaManager
from ml_dash.client.metrics import MetricsLogger, set_in_run
from ml_dash.client.params import ParameterManager
from ml_dash.client.ranks import detect_rank
from ml_dash.settings import LOCAL_ROOT, NAMESPACE, REMOTE, WORKSPACE
from ml_dash.client.run.system import STOP_TIMEOUT, start_sampler, system_settings
from ml_dash.format.annotations import check_readme
from ml_dash.format.layout import META_FILE, files_path, read_meta, write_meta
from ml_dash.format.limits import ALERT_CONTEXT_KEY, ALERT_TITLE_MAX
from ml_dash.format.names import check_remote, check_segments
from ml_dash.client.pipeline.process import PIPELINE

logger = logging.getLogger("ml_dash")

# How an experiment with ``remote=`` gets its link to the server: set by ``ml_dash.client.wiring`` (the API layer never
# imports the uploader). It returns an object with ``run_started(started_at, previous_meta)`` and
# ``run_ended(status, error)``.
attach_remote: Callable[["Experiment"], Any] | None = None


class Experiment:
    """One experiment: ``exp.params``, ``exp.metrics``, ``exp.logs``, ``exp.media``, ``exp.files`` and ``exp.run()``."""

    def __init__(self, namespace: str | None = None, workspace: str | None = None, prefix: str | None = None,
                 remote: str | None = None, local_root: str | None = None, directory: str | None = None,
                 readme: str | None = None, experiment_id: str | None = None, *,
                 tags: list[str] | None = None, system_metrics: bool | None = None, save_code: bool | None = None,
                 capture_environment: bool | None = None, resume_step: int | None = None, append: bool = False,
                 fork_from: str | None = None, fork_step: int | None = None, console: bool | None = None,
                 rank: int | None = None, world_size: int | None = None, job_id: str | None = None) -> None:
        namespace = NAMESPACE.get(namespace)
        workspace = WORKSPACE.get(workspace)
        missing = [name for name, value in (("namespace", namespace), ("workspace", workspace), ("prefix", prefix)) if value is None]
        if missing:
            hints = {"namespace": NAMESPACE.env_var, "workspace": WORKSPACE.env_var, "prefix": None}
            raise ValueError("Experiment: missing " + ", ".join(
                f"{m} (pass {m}=...{' or set ' + hints[m] if hints[m] else ''})" for m in missing))
        self._namespace = check_segments("namespace", namespace, allow_nested=False)
        self._workspace = check_segments("workspace", workspace, allow_nested=False)
        self._prefix = check_segments("prefix", prefix)
        self._directory = check_segments("directory", directory) if directory else None
        self._remote, note = check_remote(REMOTE.get(remote), "Experiment")
        if note:
            logger.warning("ml-dash: %s", note)
        self._readme = check_readme(readme)  # here, at the call, rather than as a 400 in the uploader
        self._experiment_id = experiment_id
        self._run_id: str | None = None
        # Per run: a system-metrics sampler thread and an environment capture (docs/system-metrics.md)
        self._system = system_settings(system_metrics)
        self._environment = environment_settings(capture_environment, save_code)
        self._console_settings = console_settings(console)
        # Which rank of which job (client/ranks.py): a rank > 0 writes its own files and status (docs/distributed.md)
        self.rank_info = detect_rank(rank, world_size, job_id)
        self._console: Any = None
        self._console_shed = 0  # bytes of the last run's console output that were not stored
        self._sampler: Any = None
        self._capture: Any = None
        self._runs_started = 0  # a capture that finishes after its run ended still records, unless another began
        self._meta_lock = threading.Lock()  # the environment helper writes the meta file too
        root = LOCAL_ROOT.get(local_root)
        parts = [self._namespace, self._workspace] + (self._directory.split("/") if self._directory else []) + self._prefix.split("/")
        self._path = os.path.join(os.path.abspath(root), *parts)
        self._meta = self._load_meta()
        # The next run's branch (docs/branches.md): where it supersedes earlier runs' points, and a fork's parent
        self._branch = check_branch(resume_step, append, "Experiment")
        if fork_from is not None or fork_step is not None:
            self._meta["fork"] = check_fork(fork_from, fork_step, self._meta.get("fork"))
        self._uploader = None
        self._url_shown = False
        # exp.tags / exp.notes edit the meta file; a change also wakes the uploader (docs/query.md)
        self.tags = Tags(self._meta, self._annotations_changed)
        if tags is not None:
            self.tags.set(tags)
        self._owner_pid = os.getpid()
        self._end_lock = threading.Lock()  # complete()/fail() from two threads: the first one ends the run
        self._start_lock = threading.Lock()  # run() and an implicit start from two threads: one run
        # Public-internal seams (the loggers, the uploader and ml_dash.testing use them; not part of the user API):
        # in_run and store_key are plain attributes, read by the loggers off a run's hot path without a property call.
        self.in_run = False  # this object started a run that has not ended
        self._implicit = False  # that run was started by a logging call, not by run(): run() adopts it
        self._ran = False  # this object has started a run before
        self._warned: set[str] = set()
        self.store_key = register_store(self._path, self.rank_info.rank)
        self.params = ParameterManager(self, self.store_key, self._path)
        self.metrics = MetricsLogger(self, self.store_key, self._path)
        set_in_run(self.metrics, False)
        self.logs = LogManager(self, self.store_key, self._path)
        self.media = MediaManager(self, self.store_key, self._path)
        self.files = FileManager(files_path(self._path))
        if self._remote:
            self._uploader = attach_remote(self)

    # -- identity ---------------------------------------------------------------------------------------------
    namespace = property(lambda self: self._namespace)
    workspace = property(lambda self: self._workspace)
    prefix = property(lambda self: self._prefix)
    directory = property(lambda self: self._directory)
    remote = property(lambda self: self._remote)
    readme = property(lambda self: self._readme)
    run_id = property(lambda self: self._run_id)
    local_path = property(lambda self: self._path, doc="The experiment's local directory.")
    status = property(lambda self: self._meta.get("status"))
    fork = property(lambda self: self._meta.get("fork"), doc="The parent and step this experiment was forked from.")
    environment = property(lambda self: self._meta.get("environment"), doc="The run's environment, once captured.")

    @property
    def experiment_id(self) -> str | None:
        return self._experiment_id

    @property
    def url(self) -> str | None:
        """Where the run can be seen on the dashboard: ``<remote>/#/exp/<id>`` once the server has answered, its
        workspace's page ``<remote>/#/ws/<namespace>/<workspace>`` before; ``None`` for a local run."""
        if not self._remote:
            return None
        from urllib.parse import quote

        if self._experiment_id:
            return f"{self._remote}/#/exp/{quote(self._experiment_id, safe='')}"
        return f"{self._remote}/#/ws/{quote(self._namespace, safe='')}/{quote(self._workspace, safe='')}"

    @property
    def notes(self) -> str | None:
        """Free text about the experiment (``exp.notes = "..."``; None clears it); kept in the meta file."""
        return self._meta.get("notes")

    @notes.setter
    def notes(self, value: str | None) -> None:
        set_notes(self._meta, value, self._annotations_changed)

    def _annotations_changed(self) -> None:
        # The revision tells the uploader what it has not sent yet (it compares it with its sync state).
        self._meta["annotations_revision"] = int(self._meta.get("annotations_revision") or 0) + 1
        self._write_meta()
        if self._uploader is not None:
            self._uploader.annotations_changed()

    def __repr__(self) -> str:
        return f"Experiment({self._namespace}/{self._workspace}/{(self._directory + '/') if self._directory else ''}{self._prefix}, status={self.status})"

    # -- lifecycle -----------------------------------------------------------------------------------------------
    def run(self, func: Callable | None = None, *, resume_step: int | None = None, append: bool | None = None) -> Any:
        """Start the run. Use as a direct call, ``with exp.run():`` (also ``async with``) or as ``@exp.run``.

        ``resume_step``: the step this run resumes from (its checkpoint's): every earlier run's points at steps
        >= it are superseded (docs/branches.md); by default a run supersedes from its first logged step.
        ``append=True``: supersede nothing."""
        if resume_step is not None or append is not None:
            self._branch = check_branch(resume_step, bool(append), "run")
        if func is not None:
            return self._decorate(func)
        with self._start_lock:
            if self.in_run:
                if self._implicit:  # a logging call started it: this run() takes it over
                    self._implicit = False
                    return _RunContext(self)
                self._warn_once("nested", "ml-dash: run() while a run of %s is already open (a second run() or a "
                                "nested `with exp.run()`): the open run continues and ends with its first run()",
                                self._path)
                return _RunContext(self, owner=False)
            self._start()
        return _RunContext(self)

    def ensure_run(self, where: str) -> None:
        """Public-internal: a logging call while this object has no open run (the loggers call it, off the hot path of
        a run; ``where`` names the call in messages).

        Before the first run, it starts one implicitly, as W&B and MLflow do: the data then belongs to a run, reaches
        the server, and the run is completed at exit (or by ``complete()``; a later ``run()`` takes it over). After
        the run ended, it warns once and the data is kept (in the local files, as before)."""
        with self._start_lock:
            if self.in_run:
                return
            if os.getpid() != self._owner_pid:
                return  # a forked child logs into its parent's files and never starts a run of its own
            if self._ran:
                self._warn_once("after_end", "ml-dash: %s after the run of %s ended: the data is kept in its files "
                                "but belongs to no run (call exp.run() to start a new one)", where, self._path)
                return
            self._implicit = True
            logger.info("ml-dash: %s before exp.run(): starting a run of %s (completed at exit)", where, self._path)
            self._start()

    def _warn_once(self, kind: str, message: str, *args: Any) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            logger.warning(message, *args)

    def _decorate(self, func: Callable) -> Callable:
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                async with self.run():
                    return await func(*args, **kwargs)
            return async_wrapper

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self.run():
                return func(*args, **kwargs)
        return wrapper

    def _start(self) -> None:
        # The meta as it is now (another process may have started a run since we read it): the uploader ends a
        # predecessor whose process died.
        previous = self._load_meta() if self._uploader is not None else None
        import socket  # here, not at the top: every module imported eagerly adds to ``import ml_dash``

        self._meta.update(status="running", started_at=time.time(), completed_at=None, error=None,
                          hostname=socket.gethostname(), pid=os.getpid())
        # The run's mark goes to the writer before any of its rows (format.branches); the meta keeps the run's list
        # so `ml-dash sync` registers every run logged offline, in order, with its branch step.
        if self._meta.get("fork") and not self._ran:
            self._inherit_params()
        mark = start_mark(self._meta, self._branch)
        self._branch = (None, False)  # a declared step is this run's only: the next run branches where it begins
        PIPELINE.queue.append(record_event(self.store_key, RUN_STREAM, mark, False))
        self._meta.pop("console_shed_bytes", None)
        if self.rank_info.distributed:
            job = dict(rank=self.rank_info.rank, world_size=self.rank_info.world_size, job_id=self.rank_info.job_id)
            self._meta.update(job)
            self._meta["runs"][-1].update(job)  # `ml-dash sync` registers each run logged offline with its job
        if self._environment[0]:
            self._meta.pop("environment", None)  # an earlier run's, until this run's capture replaces it
        self._write_meta()
        self._console = start_console(self.store_key, *self._console_settings)
        self._sampler = start_sampler(self.store_key, *self._system)
        self._runs_started += 1
        if self._environment[0]:
            run = self._runs_started
            self._capture = EnvironmentCapture(self._environment[1],
                                               lambda environment, diff: self._environment_captured(environment, diff,
                                                                                                    run))
        self.in_run = self._ran = True
        set_in_run(self.metrics, True)
        _sigterm.handle_sigterm()
        if self._finalise_at_exit not in PIPELINE.at_exit:
            PIPELINE.at_exit.append(self._finalise_at_exit)
        PIPELINE.ensure_exit_hook()
        if self._uploader is not None:
            # A run whose process died without ending it is ended on the server before this one starts.
            self._uploader.run_started(self._meta["started_at"], previous, self._meta["client_run_id"])
            if not self._url_shown and not self.rank_info.rank:  # once per object (rank 0), as W&B prints its page
                self._url_shown = True
                notice = f"ml-dash: view {self._prefix} at {self.url}\n"
                if self._console is not None:
                    self._console.terminal(notice)  # the terminal's, not a line of the run's console
                else:
                    print(notice, end="", file=sys.stderr)

    def _inherit_params(self) -> None:
        """A fork starts with its parent's parameters (when the parent is on this machine; the server copies them
        otherwise), once: before any parameter of its own."""
        from ml_dash.format.branches import fork_parent_path
        from ml_dash.format.jsonl import read_jsonl
        from ml_dash.format.layout import stream_path
        from ml_dash.format.params import replay

        parent = fork_parent_path(self._path, dict(self._meta, prefix=self._prefix, directory=self._directory))
        if parent is None or os.path.exists(stream_path(self._path, "parameters")):
            return
        inherited = replay(read_jsonl(stream_path(parent, "parameters")))
        if inherited:
            self.params.extend(**inherited)

    def complete(self) -> None:
        """Mark the run completed, after everything logged has been written (waiting at most ML_DASH_COMPLETE_TIMEOUT)."""
        self._end("completed", None, PIPELINE.complete_timeout)

    def fail(self, error: Any = None) -> None:
        """Mark the run failed with ``error``, after everything logged has been written (bounded like ``complete``)."""
        self._end("failed", "" if error is None else str(error), PIPELINE.complete_timeout)

    def fail_with_exception(self, exc_type: Any, exc: Any, tb: Any) -> None:
        """Public-internal (``exp.run()``'s context): ``fail()`` for the exception that ends the run, its traceback
        stored in the run's console (Python prints it only after the run has ended)."""
        import traceback

        trace = "".join(traceback.format_exception(exc_type, exc, tb))
        self._end("failed", f"{exc_type.__name__}: {exc}", PIPELINE.complete_timeout, trace)

    def _end(self, status: str, error: str | None, timeout: float | None = None, trace: str | None = None) -> None:
        if self._meta.get("status") != "running" or os.getpid() != self._owner_pid:
            return  # idempotent; and a forked child never ends its parent's run
        # Bounded even at exit, where a daemon thread may be ending this run and holding the lock.
        if not self._end_lock.acquire(timeout=-1 if timeout is None else max(timeout, 1.0)):
            return
        try:
            if self._meta.get("status") == "running":  # another thread may have ended it while we waited
                self._end_locked(status, error, timeout, trace)
        finally:
            self._end_lock.release()

    def _end_locked(self, status: str, error: str | None, timeout: float | None, trace: str | None = None) -> None:
        self._stop_run_helpers(timeout, trace)
        written = PIPELINE.flush(timeout)
        dropped = PIPELINE.sink.dropped(self.store_key)
        if dropped:  # logged after the drain, so the warning itself finds room in the queue
            self.logs.warning("ml-dash dropped events because the queue was full (on_full='drop')",
                              dropped_events=dropped)
            written = PIPELINE.flush(timeout) and written
        written = self.close_files(timeout) and written
        self._meta.update(status=status, completed_at=time.time(), error=error, dropped_events=dropped)
        end_mark(self._meta)
        if self._console_shed:
            self._meta["console_shed_bytes"] = self._console_shed
        self._meta.pop("unwritten_events", None)  # an earlier run's count must not stick to this one
        if not written:
            self._meta["unwritten_events"] = PIPELINE.pending()
            if timeout:  # at exit (timeout 0) the exit hook has already said what was left
                print(f"ml-dash: {self._meta['unwritten_events']} events were not written within {timeout:g}s when the "
                      f"run ended; they stay queued and the exit hook tries again", file=sys.stderr)
        self._write_meta()
        self.in_run = self._implicit = False
        set_in_run(self.metrics, False)
        if self._finalise_at_exit in PIPELINE.at_exit:
            PIPELINE.at_exit.remove(self._finalise_at_exit)
        if self._uploader is not None:
            self._uploader.run_ended(status, error)

    def _stop_run_helpers(self, timeout: float | None, trace: str | None = None) -> None:
        """Stop the sampler (its last row is then flushed with the rest) and give the environment capture a moment:
        a git still running is killed first (a hung git must not hold up the run's end, nor outlive it), so the
        moment is spent only on the rest. A capture done later still records (``_environment_captured``)."""
        bound = STOP_TIMEOUT if timeout is None else min(timeout, STOP_TIMEOUT)
        console, self._console = self._console, None
        self._console_shed = 0
        if console is not None:  # first: its last lines (a traceback at exit) are queued before the final flush
            if trace:  # the exception that ends the run: Python prints it only once the run has ended
                console.add("stderr", trace)
            console.stop(max(bound, 0.5))
            self._console_shed = console.shed
        sampler, capture, self._sampler, self._capture = self._sampler, self._capture, None, None
        if capture is not None:
            capture.stop_git()
        if sampler is not None:
            sampler.stop(bound)
        if capture is not None:
            capture.wait(bound)

    def _environment_captured(self, environment: dict, diff: bytes | None, run: int) -> None:
        """On the capture's helper thread: save the diff through exp.files, then the meta; tell the uploader. A
        capture of an earlier run (finished after another run began) records nothing: the meta is that run's."""
        if run != self._runs_started:
            return
        if diff is not None:
            try:
                self.files("code").save(diff, "diff.patch")
                environment["git"]["diff"] = "files/code/diff.patch"
            except OSError as exc:
                logger.warning("ml-dash: could not save the code diff of %s: %s", self._path, exc)
        self._meta["environment"] = environment
        self._write_meta()
        if self._uploader is not None:
            self._uploader.environment_captured(environment)

    def close_files(self, timeout: float | None = None) -> bool:
        """Public-internal (``ml_dash.testing`` calls it before deleting a directory): fsync and close the JSONL files; ``False`` if that failed or the writer was busy past ``timeout``.

        Done while the writer is held off (it may be appending to them for another thread, and a closed descriptor's
        number can be reused by any file): a process running many runs one after another would otherwise run out of
        descriptors. A later event reopens them.
        """
        with PIPELINE.writer_held(timeout) as held:
            if not held:
                return False
            try:
                PIPELINE.sink.close_store(self.store_key)
                return True
            except OSError:
                return False

    def _finalise_at_exit(self) -> None:
        # A run still open at exit: failed if the interpreter is exiting on an uncaught exception. Its last events
        # (the drop warning) get the exit timeout too, unless the drain at exit already ran out of it.
        timeout = PIPELINE.exit_timeout if PIPELINE.exit_drained else 0
        uncaught = getattr(sys, "last_value", None)
        if _sigterm.terminated_by is not None:
            self._end("failed", _sigterm.terminated_by, timeout=timeout)
        elif uncaught is not None:
            self._end("failed", f"{type(uncaught).__name__}: {uncaught}", timeout=timeout)
        else:
            self._end("completed", None, timeout=timeout)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything logged so far is in the local files; ``False`` if ``timeout`` ran out."""
        return PIPELINE.flush(timeout)

    async def flush_async(self, timeout: float | None = None) -> bool:
        """``flush()`` for async code: waits for the writer without blocking the event loop."""
        from ml_dash.client.pipeline.aio import flush_async

        return await flush_async(PIPELINE, timeout)

    # -- logging shortcuts ----------------------------------------------------------------------------------------
    def info(self, message: str, **context: Any) -> None:
        self.logs.log(message, "INFO", **context)

    def warning(self, message: str, **context: Any) -> None:
        self.logs.log(message, "WARNING", **context)

    def error(self, message: str, **context: Any) -> None:
        self.logs.log(message, "ERROR", **context)

    def debug(self, message: str, **context: Any) -> None:
        self.logs.log(message, "DEBUG", **context)

    def alert(self, title: str, text: str = "", level: str = "WARNING") -> None:
        """An alert only the training code can see (docs/alerts.md): a log line the server turns into a webhook for
        the ``client`` rules covering this run. It travels with the run's logs, so an offline run's alerts are sent
        when it is synced, marked late, several at once as one."""
        if not isinstance(title, str) or not title.strip() or len(title) > ALERT_TITLE_MAX:
            raise ValueError(f"alert: title must be a non-empty str of at most {ALERT_TITLE_MAX} characters, "
                             f"got {title!r}")
        if not isinstance(text, str):
            raise TypeError(f"alert: text must be a str, got {type(text).__name__}")
        self.logs.log(text or title, level, **{ALERT_CONTEXT_KEY: title})

    # -- meta file ------------------------------------------------------------------------------------------------
    def _load_meta(self) -> dict:
        meta = read_meta(self._path, rank=self.rank_info.rank)
        if self._experiment_id is None:
            self._experiment_id = meta.get("experiment_id")
        if self._readme is None:
            self._readme = meta.get("readme")
        return meta

    def _write_meta(self) -> None:
        try:
            with self._meta_lock:  # the last write holds every change made before it, whichever thread made it
                self._meta.update(namespace=self._namespace, workspace=self._workspace, prefix=self._prefix,
                                  directory=self._directory, readme=self._readme, experiment_id=self._experiment_id,
                                  run_id=self._run_id)
                write_meta(self._path, self._meta, self.rank_info.rank)
        except OSError as exc:  # an unwritable root must not crash the training loop; the writer reports it too
            logger.warning("ml-dash: could not write %s: %s", META_FILE, exc)
            print(f"ml-dash: could not write the run's status file in {self._path}: {exc}", file=sys.stderr)

    def set_remote_ids(self, experiment_id: str | None, run_id: str | None) -> None:
        """Public-internal: the uploader gives the server's ids once it has answered."""
        if experiment_id:
            self._experiment_id = experiment_id
        if run_id:
            self._run_id = run_id


class _RunContext:
    """Returned by ``exp.run()``: the run has already started; entering is optional. A context that does not own the
    run (``run()`` while one was open) leaves ending it to the one that does."""

    def __init__(self, exp: Experiment, owner: bool = True) -> None:
        self._exp = exp
        self._owner = owner

    def __enter__(self) -> Experiment:
        return self._exp

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if not self._owner:
            return
        if exc_type is None:
            self._exp.complete()
        else:
            self._exp.fail_with_exception(exc_type, exc, tb)

    async def __aenter__(self) -> Experiment:
        return self._exp

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        import asyncio

        # complete()/fail() wait for the writer; do that off the event loop. Shielded: a second cancellation
        # (CancelledError is what ended the block) must not stop the run being marked failed with its data kept.
        await asyncio.shield(asyncio.get_running_loop().run_in_executor(None, self.__exit__, exc_type, exc, tb))
