"""Helpers for users' own tests: an experiment in a throwaway directory, and its files read back."""
from __future__ import annotations

import contextlib
import tempfile
from typing import Any, Iterator

from ml_dash.client.experiment import Experiment
from ml_dash.format.jsonl import read_jsonl
from ml_dash.format.layout import read_meta, stream_path
from ml_dash.format.params import replay
from ml_dash.format.branches import mark_of
from ml_dash.format.values import decode_metrics


@contextlib.contextmanager
def temporary_experiment(**kwargs: Any) -> Iterator[Experiment]:
    """An ``Experiment`` rooted in a temporary directory (namespace/workspace/prefix default to ``test``).

    A run still open when the block ends is completed (failed if the block raised) before the directory goes.
    """
    with tempfile.TemporaryDirectory(prefix="ml-dash-test-") as root:
        kwargs.setdefault("namespace", "test")
        kwargs.setdefault("workspace", "test")
        kwargs.setdefault("prefix", "test")
        kwargs.setdefault("local_root", root)
        exp = Experiment(**kwargs)
        try:
            yield exp
        except BaseException as exc:
            exp.fail(f"{type(exc).__name__}: {exc}")  # a no-op unless a run is open
            raise
        else:
            exp.complete()  # a run left open would otherwise be ended at exit, recreating the deleted directory
        finally:
            exp.flush()
            exp.close_files()


def read_run(path: str) -> dict:
    """Everything an experiment directory holds: ``meta``, ``params`` (replayed), ``metrics``, ``logs`` and the
    sampler's ``system`` rows."""
    try:
        meta = read_meta(path, strict=True)  # a damaged meta file is an error in a test, not an empty dict
    except FileNotFoundError:
        meta = {}
    # every row logged, in order, without the run marks (format.branches); history_rows(path) resolves branches
    metrics = [row for row in read_jsonl(stream_path(path, "metrics")) if mark_of(row) is None]
    for row in metrics:
        decode_metrics(row.get("metrics") or {})
    return {
        "meta": meta,
        "params": replay(read_jsonl(stream_path(path, "parameters"))),
        "metrics": metrics,
        "logs": read_jsonl(stream_path(path, "logs")),
        "system": read_jsonl(stream_path(path, "system")),
    }
