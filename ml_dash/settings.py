"""Every client setting, declared once: a ``Setting`` with its name, type, default and one line of doc.

Precedence, the same for all: an explicit argument → ``ML_DASH_<NAME>`` → ``ML_LOGGER_<NAME>`` (the legacy spelling)
→ the default. Code asks the object (``QUEUE_SIZE.get()``, ``NAMESPACE.get(namespace)``); nothing else reads the
environment. The server declares its settings with the same class in ``ml_dash/server/config.py``, next to the
``ServerConfig`` that owns them. docs/settings.md is ``markdown_table()`` of ``REGISTRY`` (tests/test_settings.py
checks it).
"""
from __future__ import annotations

import os
from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")

REGISTRY: dict[str, "Setting[Any]"] = {}
"""Every declared setting by name, in declaration order (client ones first; the server's once it is imported)."""

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def as_bool(raw: str) -> bool:
    """``convert`` for an on/off setting: 1/0, true/false, yes/no, on/off (any case)."""
    text = raw.strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError("must be one of 1, 0, true, false, yes, no, on, off")


def positive_seconds(raw: str) -> float:
    """``convert`` for an interval: a number of seconds greater than 0."""
    value = float(raw)
    if not value > 0:
        raise ValueError("must be a number of seconds greater than 0")
    return value


class Setting(Generic[T]):
    """One setting. ``type`` is ``str``, ``int``, ``float``, ``bool`` or a tuple of the allowed strings; ``convert``
    (default: from ``type``) parses the variable's text and raises ``ValueError`` saying what is wrong. ``legacy``:
    whether ``ML_LOGGER_<NAME>`` is read too (settings that never had that spelling do not gain it)."""

    __slots__ = ("name", "type", "default", "doc", "convert", "variables", "scope")

    def __init__(self, name: str, type: Any, default: T, doc: str, *, convert: Callable[[str], T] | None = None,
                 legacy: bool = True, scope: str = "client") -> None:
        if name in REGISTRY:
            raise ValueError(f"setting {name} is declared twice")
        self.name, self.type, self.default, self.doc, self.scope = name, type, default, doc, scope
        self.convert: Callable[[str], T] = convert or _converter(name, type)
        self.variables = (f"ML_DASH_{name}", f"ML_LOGGER_{name}") if legacy else (f"ML_DASH_{name}",)
        REGISTRY[name] = self

    @property
    def env_var(self) -> str:
        return self.variables[0]

    def get(self, argument: T | None = None) -> T:
        """The explicit ``argument`` if not None, else the first variable set (and not empty), else the default."""
        if argument is not None:
            return argument
        for var in self.variables:
            raw = os.environ.get(var)
            if raw not in (None, ""):
                try:
                    return self.convert(raw)  # type: ignore[arg-type]
                except ValueError as exc:
                    raise ValueError(f"environment variable {var}={raw!r} is invalid: {exc}") from None
        return self.default

    def __repr__(self) -> str:
        return f"Setting({self.env_var}, default={self.default!r})"


def _converter(name: str, kind: Any) -> Callable[[str], Any]:
    if kind is bool:
        return as_bool
    if isinstance(kind, tuple):
        return _one_of(name.lower(), kind)
    return kind


def _one_of(label: str, choices: tuple[str, ...]) -> Callable[[str], str]:
    quoted = [repr(c) for c in choices]
    message = f"{label} must be {', '.join(quoted[:-1])} or {quoted[-1]}"

    def convert(value: str) -> str:
        if value not in choices:
            raise ValueError(message)
        return value

    return convert


# -- where a run goes -------------------------------------------------------------------------------------------
NAMESPACE: Setting[str | None] = Setting("NAMESPACE", str, None,
                                         "the experiment's namespace when the constructor omits it")
WORKSPACE: Setting[str | None] = Setting("WORKSPACE", str, None,
                                         "the experiment's workspace when the constructor omits it")
REMOTE: Setting[str | None] = Setting("REMOTE", str, None,
                                      "server URL (http:// or https://) to upload to and read from")
TOKEN: Setting[str | None] = Setting("TOKEN", str, None, "bearer token for a server with authentication")
LOCAL_ROOT: Setting[str] = Setting("LOCAL_ROOT", str, ".ml-logger", "root directory of the local files")

# -- the queue and its writer (client/pipeline) -----------------------------------------------------------------
QUEUE_SIZE: Setting[int] = Setting("QUEUE_SIZE", int, 1_000_000, "events the queue holds before back-pressure")
ON_FULL: Setting[str] = Setting("ON_FULL", ("block", "drop"), "block",
                                "a full queue makes the caller wait (`block`) or drops and counts the event (`drop`)")
MEDIA_QUEUE_BYTES: Setting[int] = Setting("MEDIA_QUEUE_BYTES", int, 512 << 20,
                                          "bytes of captured media (arrays, clones) the queue holds before `ON_FULL` "
                                          "applies to media ([media.md](media.md))", legacy=False)
BATCH_SIZE: Setting[int] = Setting("BATCH_SIZE", int, 20_000,
                                   "events per writer batch; a batch this large wakes the writer early")
FLUSH_INTERVAL: Setting[float] = Setting("FLUSH_INTERVAL", float, 0.2, "seconds between writer wake-ups")
EXIT_TIMEOUT: Setting[float] = Setting("EXIT_TIMEOUT", float, 10.0, "seconds the exit hook waits for the writer")
COMPLETE_TIMEOUT: Setting[float] = Setting("COMPLETE_TIMEOUT", float, 120.0,
                                           "seconds `complete()`/`fail()` wait for the writer; past it the meta file "
                                           "records `unwritten_events`")
WRITER: Setting[str] = Setting("WRITER", ("thread", "asyncio"), "thread",
                               "`asyncio` runs the writer as a task on the running event loop "
                               "([async-and-tensors.md](async-and-tensors.md))")

# -- per run: system metrics and environment capture (client/run) ----------------------------------------------
SYSTEM_METRICS: Setting[bool] = Setting("SYSTEM_METRICS", bool, True,
                                        "sample CPU, memory and GPU use while a run is open")
SYSTEM_INTERVAL: Setting[float] = Setting("SYSTEM_INTERVAL", float, 10.0, "seconds between system-metrics samples",
                                          convert=positive_seconds)
CAPTURE_ENVIRONMENT: Setting[bool] = Setting("CAPTURE_ENVIRONMENT", bool, True,
                                             "record the git state, Python, packages and command line of each run")
SAVE_CODE: Setting[bool] = Setting("SAVE_CODE", bool, False, "also save the uncommitted `git diff` of each run")
CONSOLE: Setting[bool] = Setting("CONSOLE", bool, True,
                                 "capture stdout and stderr (file descriptors 1 and 2) of each run, tee'd to the terminal",
                                 legacy=False)
CONSOLE_BUDGET: Setting[int] = Setting("CONSOLE_BUDGET", int, 64 << 20,
                                       "console bytes stored per run; past it output is counted and shed, not stored",
                                       legacy=False)

# -- distributed jobs ([distributed.md](distributed.md)) -------------------------------------------------------
RANK: Setting[int | None] = Setting("RANK", int, None, "this process's rank; none: torch.distributed, then RANK, "
                                    "SLURM_PROCID, OMPI_COMM_WORLD_RANK, …", legacy=False)
WORLD_SIZE: Setting[int | None] = Setting("WORLD_SIZE", int, None, "the job's number of ranks; none: detected like "
                                          "the rank", legacy=False)
JOB_ID: Setting[str | None] = Setting("JOB_ID", str, None, "the id every rank of a job shares; none: derived from "
                                      "the launcher's variables", legacy=False)

# -- the uploader (client/upload) -------------------------------------------------------------------------------
UPLOAD_TIMEOUT: Setting[float] = Setting("UPLOAD_TIMEOUT", float, 5.0, "seconds `complete()` waits for the upload")
UPLOAD_INTERVAL: Setting[float] = Setting("UPLOAD_INTERVAL", float, 1.0,
                                          "seconds per request the uploader pauses in steady state")
CONNECT_WAIT: Setting[float] = Setting("CONNECT_WAIT", float, 2.0, "seconds the constructor waits for the server's ids")
UPLOAD_BATCH_EVENTS: Setting[int] = Setting("UPLOAD_BATCH_EVENTS", int, 50_000, "events per upload request at most")
UPLOAD_BATCH_BYTES: Setting[int] = Setting("UPLOAD_BATCH_BYTES", int, 4 << 20, "bytes per upload request at most")
UPLOAD_WINDOW: Setting[int] = Setting("UPLOAD_WINDOW", int, 4, "batches of one stream in flight at most")
UPLOAD_GZIP: Setting[str] = Setting("UPLOAD_GZIP", str, "auto",
                                    "gzip request bodies: `on`, `off` or `auto` (on, except to a loopback server)")
RETRY_BASE: Setting[float] = Setting("RETRY_BASE", float, 0.5, "seconds before the first retry of a failed request")
RETRY_CAP: Setting[float] = Setting("RETRY_CAP", float, 30.0, "seconds between retries at most")
HEARTBEAT_INTERVAL: Setting[float] = Setting("HEARTBEAT_INTERVAL", float, 15.0, "seconds between the uploader's "
                                             "heartbeats for an open run", convert=positive_seconds, legacy=False)


def markdown_table(scope: str | None = None) -> str:
    """The registered settings of ``scope`` (``"client"``, ``"server"``; None: all) as a Markdown table: variable,
    type, default, meaning. docs/settings.md holds this (tests/test_settings.py prints it when the page is stale)."""
    rows = ["| variable | type | default | meaning |", "|---|---|---|---|"]
    for s in REGISTRY.values():
        if scope is not None and s.scope != scope:
            continue
        kind = " \\| ".join(f"`{c}`" for c in s.type) if isinstance(s.type, tuple) else s.type.__name__
        default = "—" if s.default is None or s.default == "" else f"`{s.default}`"
        only = "" if len(s.variables) > 1 else "; no `ML_LOGGER_` spelling"
        rows.append(f"| `{s.env_var}` | {kind} | {default} | {s.doc}{only} |")
    return "\n".join(rows) + "\n"
