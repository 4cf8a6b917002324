"""A metrics batch's parsed records → a validated ``series.batch.MetricBatch`` in one pass, with no dict per event.

This is ingest's hot loop (about a microsecond per event, half of it orjson's parse): validating each event, then
grouping its points by name (``series.batch.points_by_name``) and encoding them (``series.chunks.encode_chunk``) took
about three times as long as this single pass that checks the shape ml-dash clients write and appends each value to
its name's columns. Anything that shape check does not accept goes through ``check`` (``Validator._metric_event``, the
full check) and either joins the columns as that check normalised it or is listed in ``rejected``, so the result is
what validating the events and calling ``MetricBatch.of_events`` gives (tests/server/test_ingest.py compares them).
Before that loop, a batch whose records all have the same metric names (one ``log()`` call per step, the usual case)
is checked and split into columns with a few list comprehensions and ``set(map(type, …))`` passes, about a third of
the loop's cost; any doubt sends it through the loop.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import numpy as np

from ml_dash.format.limits import MAX_METRIC_NAMES_PER_BATCH, MAX_METRICS_PER_EVENT, STEP_END, STEP_MIN
from ml_dash.format.values import INT64_END, INT64_MIN
from ml_dash.server.errors import BadRequest
from ml_dash.server.series.batch import MetricBatch
from ml_dash.server.series.chunks import DTYPES, encode_arrays, encode_chunk
from ml_dash.server.series.types import VALUE_KIND_NAN, VALUE_KIND_NUMBER

_KEYS = {"timestamp", "step", "metrics"}
_TOO_MANY_NAMES = f"more than {MAX_METRIC_NAMES_PER_BATCH} distinct metric names in one batch"


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic collection while a batch is decoded: its records hold no cycles, yet allocating a few hundred
    thousand dicts triggers full collections that traverse every live object (they took 40% of a decode)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def metric_batch(events: list, check: Callable[[dict], dict], max_name_length: int,
                 rejected: list[dict]) -> MetricBatch:
    """``events`` (parsed records) as a ``MetricBatch`` of the valid ones; the others are appended to ``rejected``
    as ``{"index", "error"}``, as ``Validator._metric_events`` lists them."""
    uniform = _uniform_batch(events, max_name_length)
    if uniform is not None:
        return uniform
    columns: dict[str, tuple[list, list, list]] = {}
    mixed: set[str] = set()  # names with a bool or null value: their kinds need a look at each point
    kept = 0
    lo, hi = INT64_MIN, INT64_END
    for index, event in enumerate(events):
        # The shape ml-dash clients write, tested as Validator._metric_event's fast path tests it.
        if type(event) is dict and event.keys() == _KEYS:
            step, metrics, stamp = event["step"], event["metrics"], event["timestamp"]
            if (type(stamp) is float and stamp - stamp == 0.0 and type(metrics) is dict
                    and len(metrics) <= MAX_METRICS_PER_EVENT and len(columns) + len(metrics) <= MAX_METRIC_NAMES_PER_BATCH
                    and (step is None or (type(step) is int and STEP_MIN <= step < STEP_END))):
                plain = True
                for name, value in metrics.items():
                    kind = type(value)
                    if type(name) is not str or not 0 < len(name) <= max_name_length or "\x00" in name:
                        break
                    if kind is float or (kind is int and lo <= value < hi):
                        continue
                    if kind is bool or value is None:
                        plain = False
                        continue
                    break
                else:
                    _append(columns, step, stamp, metrics)
                    if not plain:
                        mixed.update(name for name, value in metrics.items() if type(value) not in (float, int))
                    kept += 1
                    continue
        try:
            if type(event) is not dict:
                raise BadRequest("must be an object")
            event = check(event)
            metrics = event["metrics"]
            if len(columns) + len(metrics) > MAX_METRIC_NAMES_PER_BATCH and \
                    len(columns) + sum(name not in columns for name in metrics) > MAX_METRIC_NAMES_PER_BATCH:
                raise BadRequest(_TOO_MANY_NAMES)
        except BadRequest as exc:
            rejected.append({"index": index, "error": exc.message})
            continue
        _append(columns, event["step"], event["timestamp"], metrics)
        mixed.update(name for name, value in metrics.items() if type(value) not in (float, int))
        kept += 1
    return _encoded(columns, mixed, kept)


def _uniform_batch(events: list, max_name_length: int) -> MetricBatch | None:
    """The usual batch, checked column by column in C-speed passes: every event a plain record with the same metric
    names (one ``log()`` call per step), finite float times, int steps, float/int values. None: anything else (the
    per-event loop then decides, record by record).

    Same keys without comparing key sets (a quarter of a microsecond per dict): a dict with as many keys as the first
    one that has each of its names has exactly its names; a missing one is a ``KeyError``."""
    if not events or set(map(type, events)) != {dict} or set(map(len, events)) != {3}:
        return None
    first = events[0].get("metrics")
    if type(first) is not dict:
        return None
    names = tuple(first)
    if not (len(names) <= MAX_METRICS_PER_EVENT and len(names) <= MAX_METRIC_NAMES_PER_BATCH
            and all(type(name) is str and 0 < len(name) <= max_name_length and "\x00" not in name for name in names)):
        return None
    try:
        metrics = [event["metrics"] for event in events]
        steps = [event["step"] for event in events]
        stamps = [event["timestamp"] for event in events]
        if set(map(type, metrics)) != {dict} or set(map(len, metrics)) != {len(names)}:
            return None
        values_of = {name: [m[name] for m in metrics] for name in names}
    except KeyError:
        return None
    if set(map(type, steps)) != {int} or not (STEP_MIN <= min(steps) and max(steps) < STEP_END):
        return None
    if set(map(type, stamps)) != {float} or not np.isfinite(np.array(stamps, DTYPES["timestamps"])).all():
        return None
    for values in values_of.values():
        kinds = set(map(type, values))
        if not kinds <= {float, int}:
            return None
        if int in kinds and not all(INT64_MIN <= v < INT64_END for v in values if type(v) is int):
            return None
    return _encoded({name: (steps, stamps, values) for name, values in values_of.items()}, set(), len(events))


def _encoded(columns: dict[str, tuple[list, list, list]], mixed: set[str], kept: int) -> MetricBatch:
    chunks, last = {}, {}
    arrays: dict[tuple[int, str], np.ndarray] = {}  # a uniform batch's names share one steps and one times list

    def array(values: list, column: str) -> np.ndarray:
        key = (id(values), column)
        if key not in arrays:
            # None (a missing step or time) becomes NaN in a float array, as encode_chunk spells it.
            arrays[key] = np.array(values, DTYPES[column])
        return arrays[key]

    for name, (steps, stamps, values) in columns.items():
        last[name] = (steps[-1], stamps[-1], values[-1])
        if name in mixed:
            chunks[name] = encode_chunk(list(zip(steps, stamps, values)))
            continue
        value_array = np.array(values, DTYPES["values"])
        kinds = np.where(np.isnan(value_array), VALUE_KIND_NAN, VALUE_KIND_NUMBER).astype(DTYPES["kinds"])
        chunks[name] = encode_arrays(array(steps, "steps"), value_array, kinds, array(stamps, "timestamps"))
    return MetricBatch(tuple(columns), chunks, last, kept)


def _append(columns: dict[str, tuple[list, list, list]], step: Any, stamp: Any, metrics: dict) -> None:
    for name, value in metrics.items():
        column = columns.get(name)
        if column is None:
            column = columns[name] = ([], [], [])
        column[0].append(step)
        column[1].append(stamp)
        column[2].append(value)
