"""``Api`` on a local root: the experiments' directories read as they are (meta file, JSONL streams, files/)."""
from __future__ import annotations

import math
import os
import shutil
import time
from typing import Any, Sequence

import numpy as np
import orjson

from ml_dash.query.frames import in_step_order, minmax
from ml_dash.format.branches import history_rows
from ml_dash.format.filter import DEFAULT_ORDER, matches, sort_records
from ml_dash.format.jsonl import file_size, iter_jsonl, read_jsonl
from ml_dash.format.layout import (FILES_DIR, META_FILE, files_path, is_experiment, rank_of_stream_file, read_meta,
                                   saved_files, stream_path,
                                   write_meta)
from ml_dash.format.names import check_segments, natural_key, safe_join
from ml_dash.format.params import replay
from ml_dash.format.values import TEXT_TO_NONFINITE
from ml_dash.query.media import local_histograms, local_items, local_keys


def _number(value: Any) -> float:
    if value is True or value is False:
        return float(value)
    if type(value) in (int, float):
        return float(value)
    if type(value) is str and value in TEXT_TO_NONFINITE:
        return TEXT_TO_NONFINITE[value]
    return math.nan  # null (and anything a reader cannot chart)


class LocalSource:
    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        # metrics.jsonl path → (bytes read, last values so far): the file only grows, so a later listing reads
        # only what was appended since (a run still logging, or a second experiments() call)
        self._last: dict[str, tuple[int, int, dict[str, Any]]] = {}  # path → (inode, bytes read, last values)

    # -- experiments ----------------------------------------------------------------------------------------------
    def _directories(self, namespace: str | None, workspace: str | None) -> list[str]:
        tops = [self.root]
        if namespace is not None:
            tops = [os.path.join(self.root, check_segments("namespace", namespace, allow_nested=False))]
        if workspace is not None:
            workspace = check_segments("workspace", workspace, allow_nested=False)
            if namespace is None:  # the workspace in every namespace
                tops = sorted(os.path.join(self.root, d) for d in _subdirectories(self.root))
            tops = [os.path.join(top, workspace) for top in tops]
        return [path for top in tops for path in _walk(top)]

    def record(self, path: str) -> dict[str, Any]:
        meta = read_meta(path)
        status = meta.get("status")
        return {
            "id": meta.get("experiment_id") or os.path.relpath(path, self.root).replace(os.sep, "/"),
            "namespace": meta.get("namespace"), "workspace": meta.get("workspace"),
            "directory": meta.get("directory") or None, "prefix": meta.get("prefix"),
            "status": status.upper() if isinstance(status, str) else None,
            "params": replay(read_jsonl(stream_path(path, "parameters"))),
            "tags": meta.get("tags") or [], "notes": meta.get("notes"), "last_metrics": self._last_metrics(path),
            "started_at": meta.get("started_at"), "completed_at": meta.get("completed_at"),
            "deleted_at": meta.get("deleted_at"), "readme": meta.get("readme"), "hostname": meta.get("hostname"),
            "path": path,
        }

    def _last_metrics(self, path: str) -> dict[str, Any]:
        file = stream_path(path, "metrics")
        try:
            inode = os.stat(file).st_ino
        except OSError:
            return {}
        known, offset, last = self._last.get(file, (inode, 0, {}))
        if known != inode or offset > file_size(file):  # replaced or truncated: start over
            offset, last = 0, {}
        last = dict(last)
        for row, end in iter_jsonl(file, offset):
            metrics = row.get("metrics")
            if isinstance(metrics, dict):
                last.update(metrics)
            offset = end
        self._last[file] = (inode, offset, last)
        return {k: TEXT_TO_NONFINITE.get(v, v) if type(v) is str else v for k, v in sorted(last.items())}

    def experiments(self, namespace: str | None, workspace: str | None, node: Any, keys: Sequence,
                    limit: int | None, include_deleted: bool) -> tuple[int, list[dict[str, Any]]]:
        records = [self.record(path) for path in self._directories(namespace, workspace)]
        found = [r for r in records if (include_deleted or r["deleted_at"] is None) and matches(node, r)]
        found = sort_records(found, keys or DEFAULT_ORDER)
        return len(found), found if limit is None else found[:limit]

    def experiment(self, key: str) -> dict[str, Any]:
        """By directory (absolute, or relative to the working directory or to the root), or by id."""
        for candidate in (key, os.path.join(self.root, key)):
            if is_experiment(candidate):
                return self.record(os.path.abspath(candidate))
        for path in self._directories(None, None):
            record = self.record(path)
            if record["id"] == key:
                return record
        raise LookupError(f"no experiment {key!r} under {self.root}")

    # -- data -----------------------------------------------------------------------------------------------------
    def metric_names(self, record: Any) -> list[str]:
        names: dict[str, None] = {}
        for row in read_jsonl(stream_path(record.path, "metrics")):
            names.update(dict.fromkeys(row.get("metrics") or {}))
        return sorted(names)

    def ranks(self, record: Any) -> list[int]:
        found = {0}
        for name in os.listdir(record.path):
            stream_rank = rank_of_stream_file(name)
            if stream_rank is not None and stream_rank[0] == "metrics":
                found.add(stream_rank[1])
        return sorted(found)

    def series(self, record: Any, names: list[str], step_min: float | None, step_max: float | None,
               max_points: int | None, superseded: bool = False, rank: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        wanted = set(names)
        points: dict[str, tuple[list, list]] = {}
        # one value per step (format.branches resolves the runs); another rank's file is read as it is
        rows = history_rows(record.path, superseded) if not rank else read_jsonl(stream_path(record.path, "metrics", rank))
        for row in rows:
            metrics = row.get("metrics")
            if not isinstance(metrics, dict):
                continue
            step = row.get("step")
            step = math.nan if type(step) not in (int, float) or step is True or step is False else step
            for name in wanted.intersection(metrics):
                steps, values = points.setdefault(name, ([], []))
                steps.append(step)
                values.append(_number(metrics[name]))
        out = {}
        for name, (steps, values) in points.items():
            s, v = np.asarray(steps, dtype=np.float64), np.asarray(values, dtype=np.float64)
            if step_min is not None or step_max is not None:
                keep = (s >= (-math.inf if step_min is None else step_min)) & \
                       (s <= (math.inf if step_max is None else step_max))
                s, v = s[keep], v[keep]
            s, v = in_step_order(s, v)
            out[name] = minmax(s, v, max_points) if max_points is not None else (s, v)
        return out

    def summary(self, record: Any) -> dict[str, dict[str, Any]]:
        # A local root keeps no per-series summaries: one pass over metrics.jsonl, keeping four numbers per name.
        out: dict[str, dict[str, Any]] = {}
        for row in read_jsonl(stream_path(record.path, "metrics")):
            metrics = row.get("metrics")
            if not isinstance(metrics, dict):
                continue
            for name, value in metrics.items():
                entry = out.setdefault(name, {"last": None, "min": None, "max": None, "count": 0})
                entry["last"] = TEXT_TO_NONFINITE.get(value, value) if type(value) is str else value
                entry["count"] += 1
                number = _number(value)
                if math.isfinite(number):
                    entry["min"] = number if entry["min"] is None else min(entry["min"], number)
                    entry["max"] = number if entry["max"] is None else max(entry["max"], number)
        return dict(sorted(out.items()))

    def step_times(self, record: Any) -> tuple[np.ndarray, np.ndarray]:
        """Each step's first timestamp (Unix seconds), by step: the wall time of an export's rows."""
        first: dict[int, float] = {}
        for row in read_jsonl(stream_path(record.path, "metrics")):
            step, stamp = row.get("step"), row.get("timestamp")
            if type(step) is int and type(stamp) in (int, float) and step not in first:
                first[step] = stamp
        steps = np.array(sorted(first), dtype=np.float64)
        return steps, np.array([first[int(s)] for s in steps], dtype=np.float64)

    def logs(self, record: Any, level: str | None, limit: int | None) -> list[dict[str, Any]]:
        entries = [{"timestamp": e.get("timestamp"), "level": e.get("level"), "message": e.get("message"),
                    "context": e.get("context")} for e in read_jsonl(stream_path(record.path, "logs"))
                   if level is None or e.get("level") == level]
        return entries if limit is None else entries[max(0, len(entries) - limit):]

    def environment(self, record: Any) -> dict[str, Any] | None:
        found = read_meta(record.path).get("environment")
        if found is None:
            try:
                with open(os.path.join(record.path, "environment.json"), "rb") as f:
                    found = orjson.loads(f.read())
            except (OSError, orjson.JSONDecodeError):
                return None
        return found if isinstance(found, dict) else None

    def files(self, record: Any) -> list[dict[str, Any]]:
        found = saved_files(files_path(record.path))
        return [{"path": path, "size": st.st_size} for path, st in sorted(found, key=lambda item: natural_key(item[0]))]

    def download(self, record: Any, path: str, to: str) -> str:
        source = safe_join(files_path(record.path), path, "path")
        if not os.path.isfile(source):
            raise FileNotFoundError(f"no file {path!r} in experiment {record.id!r}")
        target = os.path.join(to, os.path.basename(source)) if os.path.isdir(to) else to
        shutil.copyfile(source, target)
        return target

    def media_keys(self, record: Any) -> list[dict[str, Any]]:
        return local_keys(record.path)

    def media_items(self, record: Any, key: str, step_min: float | None, step_max: float | None):
        return local_items(record.path, key, step_min, step_max)

    def histograms(self, record: Any, key: str, step_min: float | None, step_max: float | None) -> dict[str, Any]:
        return local_histograms(record.path, key, step_min, step_max)

    def set_deleted(self, record: Any, deleted: bool) -> float | None:
        meta = read_meta(record.path)
        meta["deleted_at"] = (meta.get("deleted_at") or time.time()) if deleted else None
        write_meta(record.path, meta)
        return meta["deleted_at"]


def _subdirectories(path: str) -> list[str]:
    try:
        return [entry.name for entry in os.scandir(path) if entry.is_dir()]
    except OSError:
        return []


def _walk(top: str) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(top):
        if META_FILE in filenames:
            found.append(dirpath)
            if FILES_DIR in dirnames:
                dirnames.remove(FILES_DIR)  # a run's saved files are never experiments (and may be many)
        dirnames.sort()
    return found
