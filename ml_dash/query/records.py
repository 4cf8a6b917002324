"""What ``Api.experiments`` returns: experiment records (one per experiment) and their sequence."""
from __future__ import annotations

from typing import Any, Iterator, Sequence

import numpy as np

from ml_dash.query.frames import align, flatten, pandas
from ml_dash.query.media import decode

FIELDS = ("id", "namespace", "workspace", "directory", "prefix", "status", "params", "tags", "notes", "last_metrics",
          "started_at", "completed_at", "deleted_at", "readme", "hostname", "path")
# to_pandas(): these columns first, then params.* and metrics.*
TABLE_FIELDS = ("id", "namespace", "workspace", "directory", "prefix", "status", "tags", "notes", "started_at",
                "completed_at", "deleted_at")
TIME_FIELDS = ("started_at", "completed_at", "deleted_at")


class ExperimentRecord:
    """One experiment: its fields as attributes (``record.params``, ``record.last_metrics``...) and its data."""

    def __init__(self, source: Any, fields: dict[str, Any]) -> None:
        self._source = source
        self._fields = {name: fields.get(name) for name in FIELDS}
        self._fields["params"] = fields.get("params") or {}
        self._fields["tags"] = list(fields.get("tags") or [])
        self._fields["last_metrics"] = dict(sorted((fields.get("last_metrics") or {}).items()))

    def __getattr__(self, name: str) -> Any:
        fields = self.__dict__.get("_fields", {})
        if name in fields:
            return fields[name]
        raise AttributeError(name)

    def __getitem__(self, name: str) -> Any:
        return self._fields[name]

    def to_dict(self) -> dict[str, Any]:
        return dict(self._fields)

    def __repr__(self) -> str:
        where = "/".join(p for p in (self.namespace, self.workspace, self.directory, self.prefix) if p)
        return f"ExperimentRecord({where}, status={self.status}, id={self.id})"

    # -- data ---------------------------------------------------------------------------------------------------
    def metric_names(self) -> list[str]:
        return self._source.metric_names(self)

    def ranks(self) -> list[int]:
        """The ranks of a distributed job that wrote series (``[0]`` for a plain run; docs/distributed.md)."""
        return self._source.ranks(self)

    def to_numpy(self, keys: Sequence[str] | str | None = None, step_min: float | None = None,
                 step_max: float | None = None, max_points: int | None = None,
                 superseded: bool = False, rank: int = 0) -> dict[str, np.ndarray]:
        """``history()`` without pandas: ``{"step": steps, name: values, ...}``, float64 values (NaN: no point)."""
        if isinstance(keys, str):
            keys = [keys]
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 0:
            raise ValueError(f"rank must be an int >= 0, got {rank!r}")
        names = list(keys) if keys is not None else self.metric_names()
        if max_points is not None and (not isinstance(max_points, int) or max_points < 1):
            raise ValueError(f"max_points must be a positive int or None, got {max_points!r}")
        if not isinstance(superseded, bool):
            raise TypeError(f"superseded must be a bool, got {superseded!r}")
        series = self._source.series(self, names, step_min, step_max, max_points, superseded, rank)
        if keys is not None and len(series) < len(names):
            known = self.metric_names()
            unknown = [n for n in names if n not in known]
            if unknown:  # a typo must not read as "no data"
                listed = ", ".join(known[:30]) + (f" ... ({len(known)} in all)" if len(known) > 30 else "")
                raise KeyError(f"keys: no metric named {', '.join(map(repr, unknown))} in {self.id!r}; "
                               f"its metrics are: {listed or 'none'}")
        steps, columns = align({name: series[name] for name in names if name in series})
        return {"step": steps, **columns}

    def step_times(self, steps: np.ndarray) -> np.ndarray:
        """The wall time (Unix seconds) at which each of ``steps`` was logged: exact locally, interpolated between
        up to 10,000 anchors from a server; NaN where unknown."""
        known_steps, stamps = self._source.step_times(self)
        steps = np.asarray(steps, dtype=np.float64)
        if not len(known_steps):
            return np.full(len(steps), np.nan)
        return np.interp(steps, known_steps, stamps)

    def history(self, keys: Sequence[str] | str | None = None, step_min: float | None = None,
                step_max: float | None = None, max_points: int | None = None, superseded: bool = False,
                rank: int = 0, ranks: str | None = None) -> Any:
        """A pandas DataFrame indexed by step, one column per metric (``keys``: which; default all), every point
        unless ``max_points`` asks for min/max downsampling (up to 2 points per bucket).

        A distributed job: ``rank`` picks one rank's series (default rank 0's); ``ranks="all"`` stacks every
        rank's, with a ``rank`` column (docs/distributed.md).

        One value per step: where a later run resumed or reran, its points replace the earlier runs' from its branch
        step on, and a fork starts with its parent's history (docs/branches.md). ``superseded=True``: only the
        points later runs superseded."""
        pd = pandas()
        if ranks is not None:
            if ranks != "all":
                raise ValueError(f"ranks must be 'all' or None, got {ranks!r}")
            if isinstance(keys, str):
                keys = [keys]
            keys = list(keys) if keys is not None else self.metric_names()
            frames = []
            for each in self.ranks():
                arrays = self.to_numpy(keys, step_min, step_max, max_points, superseded, each)
                steps = arrays.pop("step")
                frame = pd.DataFrame(arrays, index=pd.Index(steps, name="step"))
                frame.insert(0, "rank", each)
                frames.append(frame)
            return pd.concat(frames) if frames else pd.DataFrame(columns=["rank"])
        arrays = self.to_numpy(keys, step_min, step_max, max_points, superseded, rank)
        steps = arrays.pop("step")
        return pd.DataFrame(arrays, index=pd.Index(steps, name="step"))

    def summary(self) -> dict[str, dict[str, Any]]:
        """Each metric at a glance: ``{name: {"last", "min", "max", "count"}}`` (``min``/``max`` over its finite
        values, None without one), the numbers a W&B run's ``summary`` holds and end-of-training values such as
        ``train_runtime``. From a server, out of the series' block summaries (no point is read)."""
        return self._source.summary(self)

    def logs(self, level: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Log entries oldest first (``{timestamp, level, message, context}``); ``limit``: the newest that many."""
        return self._source.logs(self, level.upper() if level else None, limit)

    def environment(self) -> dict[str, Any] | None:
        """The run environment the client captured (host, Python, packages...), when the run recorded one."""
        return self._source.environment(self)

    def files(self) -> list[dict[str, Any]]:
        """The experiment's files: ``{path, size}``, by path in natural order (``epoch_5`` before ``epoch_10``)."""
        return self._source.files(self)

    def download(self, path: str, to: str) -> str:
        """Copy the file ``path`` to ``to`` (a file name, or an existing directory); returns where it went."""
        return self._source.download(self, path, to)

    def media_keys(self) -> list[dict[str, Any]]:
        """The media keys logged: ``{key, kind, count, step_min, step_max}`` each, by key."""
        return self._source.media_keys(self)

    def media(self, key: str, step_min: float | None = None, step_max: float | None = None,
              decode_items: bool = True) -> Iterator[tuple[Any, Any]]:
        """``(step, item)`` for each item of ``key`` in the step range, in logging order: decoded (an image as an
        HxWxC uint8 array, audio as ``(samples, rate)``...: docs/media.md), or its bytes with ``decode_items=False``."""
        for entry, payload in self._source.media_items(self, key, step_min, step_max):
            yield entry.get("step"), decode(entry, payload) if decode_items else payload

    def media_entries(self, key: str, step_min: float | None = None,
                      step_max: float | None = None) -> Iterator[tuple[dict[str, Any], bytes]]:
        """``(entry, bytes)``: each item's index entry (step, index, kind, format, shape, caption, meta) and bytes."""
        return iter(self._source.media_items(self, key, step_min, step_max))

    def histograms(self, key: str, step_min: float | None = None, step_max: float | None = None) -> dict[str, Any]:
        """The histograms of ``key`` as arrays: ``{"step": (n,), "edges": (n, bins + 1), "counts": (n, bins)}``
        (lists of arrays where the bins differ between steps)."""
        return self._source.histograms(self, key, step_min, step_max)

    def delete(self) -> None:
        """Soft delete: hidden from ``Api.experiments`` (unless ``include_deleted``) until ``restore()``."""
        self._fields["deleted_at"] = self._source.set_deleted(self, True)

    def restore(self) -> None:
        self._fields["deleted_at"] = self._source.set_deleted(self, False)


class Records(Sequence[ExperimentRecord]):
    """A sequence of experiment records; ``total`` is how many matched before ``limit``."""

    def __init__(self, records: list[ExperimentRecord], total: int) -> None:
        self._records = records
        self.total = total

    def __getitem__(self, index):  # type: ignore[override]
        found = self._records[index]
        return Records(found, len(found)) if isinstance(index, slice) else found

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[ExperimentRecord]:
        return iter(self._records)

    def __repr__(self) -> str:
        return f"Records({len(self)} of {self.total})"

    def rows(self) -> list[dict[str, Any]]:
        """One flat dict per experiment: the fields, ``params.a.b`` and ``metrics.name`` (last values)."""
        out = []
        for record in self._records:
            row = {name: record[name] for name in TABLE_FIELDS}
            row.update(flatten(record.params))
            row.update({f"metrics.{k}": v for k, v in record.last_metrics.items()})
            out.append(row)
        return out

    def to_pandas(self) -> Any:
        """A DataFrame, one row per experiment: the fields, then ``params.*`` and ``metrics.*`` columns (sorted)."""
        pd = pandas()
        rows = self.rows()
        extra = sorted({k for row in rows for k in row if k not in TABLE_FIELDS},
                       key=lambda k: (not k.startswith("params."), k))
        frame = pd.DataFrame(rows, columns=[*TABLE_FIELDS, *extra])
        for column in TIME_FIELDS:  # Unix seconds as UTC datetimes (NaT: not yet)
            frame[column] = pd.to_datetime(pd.to_numeric(frame[column], errors="coerce"), unit="s", utc=True)
        return frame
