"""``ml_dash.Api``: read experiments back, from a server or from a local root, with the same calls and results.

The readers are imported when an ``Api`` is made, so ``import ml_dash`` does not pay for them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ml_dash.settings import LOCAL_ROOT, REMOTE, TOKEN

if TYPE_CHECKING:
    from ml_dash.query.records import ExperimentRecord, Records


class Api:
    """``Api(remote=None, local_root=".ml-logger", token=None)``.

    With ``remote`` (or ``ML_DASH_REMOTE`` / ``ML_LOGGER_REMOTE``) it reads that server (``token``: its bearer
    token, or ``ML_DASH_TOKEN``); without, the experiments under ``local_root``. See docs/query.md.
    """

    def __init__(self, remote: str | None = None, local_root: str | None = None, token: str | None = None) -> None:
        from ml_dash.format.names import check_remote

        remote, note = check_remote(REMOTE.get(remote) or None, "Api")
        if note:
            import logging

            logging.getLogger("ml_dash").warning("ml-dash: %s", note)
        self.remote = remote
        self.local_root = LOCAL_ROOT.get(local_root)
        if remote:
            from ml_dash.query.remote import RemoteSource

            self._source: Any = RemoteSource(remote, TOKEN.get(token) or None)
        else:
            from ml_dash.query.local import LocalSource

            self._source = LocalSource(self.local_root)

    def __repr__(self) -> str:
        return f"Api(remote={self.remote!r})" if self.remote else f"Api(local_root={self.local_root!r})"

    def experiments(self, namespace: str | None = None, workspace: str | None = None, filter: str | None = None,
                    order_by: str | None = None, limit: int | None = None,
                    include_deleted: bool = False) -> Records:
        """The experiments matching ``filter`` (docs/query.md), in ``order_by`` order (default: most recently
        started first), at most ``limit``; soft-deleted ones only with ``include_deleted``. A bad filter or order
        is a ``ValueError`` naming the position, raised before anything is read."""
        from ml_dash.query.records import ExperimentRecord, Records
        from ml_dash.format.filter import parse_filter, parse_order_by

        node, keys = parse_filter(filter), parse_order_by(order_by)
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
            raise ValueError(f"limit must be a positive int or None, got {limit!r}")
        if self.remote:
            total, found = self._source.experiments(namespace, workspace, filter, order_by, limit, include_deleted)
        else:
            total, found = self._source.experiments(namespace, workspace, node, keys, limit, include_deleted)
        return Records([ExperimentRecord(self._source, fields) for fields in found], total)

    def experiment(self, key: str) -> ExperimentRecord:
        """One experiment by id (a server's, or a local run's once synced), or locally by its directory or its
        ``namespace/workspace/.../prefix`` path; ``LookupError`` when there is none."""
        from ml_dash.query.records import ExperimentRecord

        return ExperimentRecord(self._source, self._source.experiment(key))
