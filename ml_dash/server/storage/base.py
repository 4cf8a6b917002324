"""The storage interface every backend implements (SQLite, PostgreSQL); ``registry`` opens one by URL.

All SQL lives behind this interface (the SQL backends share theirs in ``sql``). Records cross it as plain dicts with
snake_case keys so that routes and the GraphQL schema never depend on a backend. Events handed to ``apply_batch`` are
already validated by ``server.ingest``.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ml_dash.server.series.types import Series


@dataclass(frozen=True)
class BatchResult:
    acked: int
    stored: int
    duplicate: bool = False


class Storage(abc.ABC):
    """Async storage API. Experiment and run ids are opaque strings; unknown ids raise ``NotFound``."""

    query_timeout: float = 30.0  # seconds a read may run (the app sets ServerConfig.query_timeout): QueryTimeout
    cancelled_reads = 0  # reads stopped in the database because their caller went away (observability, tests)

    async def open(self) -> None:
        """Create or migrate the schema and get ready for calls."""

    async def close(self) -> None:
        """Release connections and threads."""

    async def watch_batches(self, stored: Callable[[str, str], None], live: Callable[[bool], None]) -> None:
        """From now on, call ``stored(experiment_id, stream_id)`` soon after any process on this database (another
        worker, another host) stored a batch of that stream, and ``live(bool)`` as that news becomes available or
        stops (a lost connection). A backend without such news (SQLite: one machine) never calls either, and batches
        sent ahead keep polling (``http/batch_order.py``)."""

    # experiments and runs
    @abc.abstractmethod
    async def create_experiment(self, namespace: str, workspace: str, directory: str, prefix: str,
                                readme: str | None, hostname: str | None) -> tuple[str, bool]: ...

    @abc.abstractmethod
    async def get_experiment(self, experiment_id: str) -> dict[str, Any]: ...

    @abc.abstractmethod
    async def list_experiments(self, namespaces: frozenset[str] | None, workspace: str | None, status: str | None,
                               limit: int, offset: int) -> list[dict[str, Any]]:
        """``namespaces``: only experiments in these (None: all)."""

    async def experiment_page(self, namespaces: frozenset[str] | None, workspace: str | None = None,
                              directory: str | None = None, filter: Any = None, order_by: tuple = (), limit: int = 100,
                              offset: int = 0, include_deleted: bool = False) -> tuple[int, list[dict[str, Any]]]:
        """(how many match, the page): ``filter`` a ``format.filter`` AST and ``order_by`` its order keys, both
        evaluated in the database; soft-deleted experiments only with ``include_deleted``."""
        raise NotImplementedError

    async def last_metrics_many(self, experiment_ids: list[str]) -> dict[str, dict[str, Any]]:
        """``last_metrics`` of several experiments in one call: id → name → value (ids without metrics left out)."""
        return {i: found for i in experiment_ids if (found := await self.last_metrics(i))}

    async def experiment_tree(self, namespaces: frozenset[str] | None, namespace: str | None = None,
                              workspace: str | None = None, directory: str = "",
                              limit: int = 1000) -> list[tuple[str, int]]:
        """One level of the navigator's tree: [(name, experiments in its subtree)], names in code-point
        order (storage/sql/tree.py)."""
        raise NotImplementedError

    async def search_experiments(self, namespaces: frozenset[str] | None, text: str,
                                 limit: int = 50) -> list[dict[str, Any]]:
        """Experiments whose prefix, directory, workspace or readme contain ``text`` (ASCII case ignored)."""
        raise NotImplementedError

    async def count_experiments(self, namespaces: frozenset[str] | None, workspace: str | None = None,
                                directory: str | None = None, include_deleted: bool = False) -> int:
        """How many experiments ``experiment_page`` with these arguments filters (before its filter)."""
        raise NotImplementedError

    async def edit_tags(self, experiment_id: str, replace: list[str] | None = None, add: tuple = (),
                        remove: tuple = ()) -> list[str]:
        """Replace or change the experiment's tags (``ValueError`` for a bad tag); returns them."""
        raise NotImplementedError

    async def set_notes(self, experiment_id: str, notes: str | None) -> str | None:
        raise NotImplementedError

    async def set_deleted(self, experiment_id: str, deleted: bool) -> float | None:
        """Soft delete or restore; returns ``deleted_at``."""
        raise NotImplementedError

    async def purge_deleted(self, before: float | None = None, batch: int = 10_000, drop_blob: Any = None,
                            echo: Any = None) -> dict[str, int]:
        """Remove soft-deleted experiments' rows for good, in bounded batches (``ml-dash server gc``)."""
        raise NotImplementedError

    @abc.abstractmethod
    async def list_namespaces(self) -> list[str]: ...

    @abc.abstractmethod
    async def list_workspaces(self, namespace: str) -> list[str]: ...

    @abc.abstractmethod
    async def create_run(self, experiment_id: str, client_run_id: str, hostname: str | None,
                         started_at: float | None, job: dict[str, Any] | None = None) -> str:
        """``job``: ``{"job_id", "rank", "world_size", "heartbeat"}`` of a rank of a distributed job and/or a client
        that sends heartbeats (docs/distributed.md); None for neither."""

    @abc.abstractmethod
    async def get_run(self, run_id: str) -> dict[str, Any]:
        """The run record plus ``experiment_id`` and ``namespace`` (for authorization)."""

    @abc.abstractmethod
    async def update_run(self, run_id: str, status: str, error: str | None, ended_at: float | None) -> None: ...

    @abc.abstractmethod
    async def list_runs(self, experiment_id: str) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    async def set_run_branch(self, run_id: str, branch_step: float) -> None:
        """The step from which the run supersedes earlier runs' points (docs/branches.md); set once."""

    @abc.abstractmethod
    async def set_fork(self, experiment_id: str, parent: str, fork_step: int) -> None:
        """The experiment starts from ``parent``'s (an id or a path in its workspace) history up to ``fork_step``."""

    @abc.abstractmethod
    async def lineage(self, experiment_id: str) -> dict[str, Any]:
        """The experiment's fork parent and its forks."""

    # ingest
    @abc.abstractmethod
    async def apply_batch(self, experiment_id: str, run_id: str | None, stream: str, stream_id: str, start: int,
                          end: int, events: list[dict[str, Any]]) -> BatchResult:
        """Store ``events`` and move the stream's acked offset from ``start`` to ``end`` in one transaction.

        Replays (``end <= acked``) store nothing and report ``duplicate``; any other ``start != acked`` raises
        ``StreamConflict``. A failure part-way leaves neither events nor offset changed.
        """

    @abc.abstractmethod
    async def stream_offsets(self, experiment_id: str) -> dict[str, int]: ...

    # reads
    @abc.abstractmethod
    async def parameter_ops(self, experiment_id: str) -> list[dict[str, Any]]:
        """Parameter records in the order they were stored (merge them with ``format.params.replay``)."""

    @abc.abstractmethod
    async def metric_names(self, experiment_id: str) -> list[str]: ...

    @abc.abstractmethod
    async def last_metrics(self, experiment_id: str) -> dict[str, Any]:
        """Name → the most recently stored value (non-finite floats as floats)."""

    @abc.abstractmethod
    async def metric_series(self, experiment_id: str, name: str, step_min: float | None,
                            step_max: float | None, max_points: int | None = None,
                            superseded: bool = False) -> Series | None:
        """The series in step order, None when the experiment has no metric of that name: one value per step, the
        points later runs superseded left out, after a fork parent's history (docs/branches.md); ``superseded``:
        only the superseded points.

        ``max_points``: the answer will be downsampled to that many buckets (``series.downsample.series_result``), so a
        backend may return an ``series.downsample.Envelope`` (already downsampled, from block summaries) instead.
        """

    async def metric_summary(self, experiment_id: str) -> list[dict[str, Any]]:
        """Per metric (by name): ``{name, last, min, max, count}``: the last stored value, the smallest and largest
        finite value (None when there is none) and the number of points. From what the backend keeps per series
        (block summaries, the last point), never a read of every point."""
        raise NotImplementedError

    async def metric_step_times(self, experiment_id: str, name: str,
                                max_points: int) -> tuple[np.ndarray, np.ndarray] | None:
        """About ``max_points`` (step, timestamp) pairs spread evenly over the series, first and last included.

        The dashboard draws a wall-time axis by interpolating between them, so series answers need no timestamps.
        None when there is no metric of that name. Optional for a backend: the dashboard then offers only steps.
        """
        raise NotImplementedError

    async def set_environment(self, experiment_id: str, environment: dict[str, Any]) -> None:
        """Replace the experiment's run environment (a JSON object, validated by the caller)."""
        raise NotImplementedError

    async def environment(self, experiment_id: str) -> dict[str, Any] | None:
        """The run environment last set, or None."""
        raise NotImplementedError

    @abc.abstractmethod
    async def logs(self, experiment_id: str, level: str | None, limit: int | None) -> list[dict[str, Any]]: ...

    # distributed jobs, heartbeats and the console (docs/distributed.md)
    async def heartbeat(self, run_id: str, now: float) -> str:
        """Record that the run's client is alive at ``now``; a run marked CRASHED is RUNNING again. Its status."""
        raise NotImplementedError

    async def mark_crashed(self, now: float, after: float) -> int:
        """Mark CRASHED every RUNNING run whose last heartbeat is older than ``now - after``; how many."""
        raise NotImplementedError

    async def console(self, experiment_id: str, rank: int | None, stream: str | None, search: str | None,
                      after: int | None, limit: int) -> list[dict[str, Any]]:
        """Console lines ``{"pk", "rank", "run_id", "timestamp", "stream", "line"}``, oldest first: the newest
        ``limit`` with pk > ``after``, of one rank / stream, or containing ``search``, where given."""
        raise NotImplementedError

    # files (the bytes live in the blob store; storage keeps the experiment's path → blob mapping)
    @abc.abstractmethod
    async def put_file(self, experiment_id: str, path: str, size: int, sha256: str) -> None: ...

    @abc.abstractmethod
    async def get_file(self, experiment_id: str, path: str) -> dict[str, Any]: ...

    @abc.abstractmethod
    async def list_files(self, experiment_id: str) -> list[dict[str, Any]]: ...
