"""``exp.metrics``: the hot path. A call checks value types, appends its kwargs dict and compares one length."""
from __future__ import annotations

from time import time as _time
from typing import Any

from ml_dash.client.events import STEP_KEY, aggregate_event, register_metric_source
from ml_dash.client.values import METRIC_TYPES as _TYPES
from ml_dash.client.values import PLAIN_TYPES as _PLAIN
from ml_dash.client.values import CPU_READ_TYPES as _CPU_READ
from ml_dash.client.values import check_metric_value, check_step, is_torch_tensor, learn_tensor_type, read_cpu_tensor
from ml_dash.format.layout import stream_path
from ml_dash.format.limits import MAX_NAME_LENGTH, STEP_END as _STEP_END, STEP_MIN as _STEP_MIN
from ml_dash.format.values import decode_metrics
from ml_dash.client.pipeline.process import PIPELINE as _P

_Q = _P.queue
_AGGREGATIONS = ("mean", "sum", "min", "max", "last")


def _check_names(namespace: str | None, metrics: dict, where: str) -> None:
    """``ValueError`` for a name the server would refuse (longer than ``MAX_NAME_LENGTH`` with its namespace).

    Not on ``log()``: a check there costs ~10% of the call, so the writer applies the same limit (the JSONL sink
    leaves such a metric out and warns); ``collect()`` leaves it to the writer too (its rows are aggregated there)."""
    prefix = len(namespace or "")
    for k in metrics:
        if prefix + len(k) > MAX_NAME_LENGTH:
            name = (namespace or "") + k
            raise ValueError(f"{where}: the metric name {name[:60]!r}... is {len(name)} characters long; names are "
                             f"limited to {MAX_NAME_LENGTH} (namespace included)")


def _check_all(metrics: dict, where: str) -> dict:
    """The slow path of the type check: convert or reject each unusual value (a TypeError names its key)."""
    row = _plain_row(metrics)
    return _check_each(metrics, where) if row is None else row


def _plain_row(metrics: dict) -> dict | None:
    """``metrics`` as a *new* dict of plain numbers with its 1-element CPU tensors read (as ``read_cpu_tensor`` does;
    inlined, it is the common case), or ``None`` if it holds anything else: another value, a bigger or complex
    tensor, a layout ``tolist()`` cannot read.

    A new dict, because the kwargs dict held a tensor: the cyclic GC tracks it for good, and 100k tracked rows waiting
    in the queue made each young collection ~20x slower and set off full ones (~100 ms with torch loaded); a dict
    built from numbers is untracked. ``ndim`` is a getter: it costs less than the ``dim()`` method call."""
    row = {}
    try:
        for k, v in metrics.items():
            if type(v) in _TYPES:
                row[k] = v
            elif type(v) in _CPU_READ and v.is_cpu and (not v.ndim or v.numel() == 1):
                if type(n := v.tolist()) not in _PLAIN:
                    while type(n) is list:  # a 1-element tensor of any shape: [[x]] -> x
                        n = n[0]
                    if type(n) not in _PLAIN:  # complex
                        return None
                row[k] = n
            else:
                return None
    except Exception:  # tolist() of a sparse or quantized tensor: the general path decides
        return None
    return row


def _check_each(metrics: dict, where: str) -> dict:
    """Convert each unusual value in place; a fresh (untracked) dict if all are plain numbers now, else ``metrics``
    itself, whose values the writer converts (a device tensor's clone, a numpy value)."""
    plain = True
    for k, v in metrics.items():
        if type(v) not in _TYPES:
            v = metrics[k] = check_metric_value(k, v, where)
            if type(v) not in _PLAIN:
                plain = False
    return dict(zip(metrics, metrics.values())) if plain else metrics  # zip: a fresh, untracked dict


def step_out_of_range(step: int, where: str) -> ValueError:
    return ValueError(f"{where}: step={step} is out of range: steps are stored as signed 64-bit integers "
                      f"({_STEP_MIN} <= step < {_STEP_END})")


def positional(data: Any, step: Any, metrics: dict, where: str) -> tuple[dict, Any]:
    """``log({"loss": x}, step=3)`` as W&B users write it: the dict's items (nested dicts flattened to dotted names,
    ``{"train": {"loss": x}}`` -> ``train.loss``) joined to the keywords; an int is the old positional ``step``."""
    if type(data) is int or type(data) is not bool and isinstance(data, int):
        if step is not None:
            raise TypeError(f"{where}: step given twice (positionally and as step=)")
        return metrics, data
    if not isinstance(data, dict):
        raise TypeError(f"{where}: the positional argument must be a dict of metrics, as in {where}({{'loss': x}}, "
                        f"step=3), or pass keywords: {where}(step=3, loss=x); got {type(data).__name__}")
    row: dict = {}
    todo = [("", data)]
    while todo:
        prefix, d = todo.pop()
        for k, v in d.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: metric names must be str, got {type(k).__name__} {k!r}")
            if isinstance(v, dict):
                todo.append((prefix + k + ".", v))
            else:
                row[prefix + k] = v
    both = row.keys() & metrics.keys()
    if both:
        raise ValueError(f"{where}: {', '.join(sorted(both))} given both in the dict and as keywords")
    row.update(metrics)
    return row, step


class MetricsLogger:
    """Logs time-series metrics; ``exp.metrics("train")`` logs ``train.loss`` and so on."""

    __slots__ = ("_exp", "_directory", "_key", "_meta", "_meta_convert", "_ns", "_collected", "_children", "_tensors")

    def __init__(self, exp: Any, store_key: int, directory: str, namespace: str | None = None) -> None:
        self._exp = exp
        self._directory = directory
        self._key = store_key
        self._ns = namespace
        self._meta = register_metric_source(store_key, namespace, convert=False)
        self._meta_convert = register_metric_source(store_key, namespace, convert=True)  # "train." — applied by the writer, not here
        self._collected: list = []
        self._children: dict[str, MetricsLogger] = {}
        self._tensors = False  # collect() kept a tensor: flush() stacks them (ml_dash.client.tensors.defer_rows)

    def __call__(self, namespace: str) -> "MetricsLogger":
        if not isinstance(namespace, str) or not namespace or "\x00" in namespace:
            raise ValueError(f"metrics namespace must be a non-empty str, got {namespace!r}")
        if len(self._ns or "") + len(namespace) + 1 >= MAX_NAME_LENGTH:
            raise ValueError(f"metrics namespace {namespace[:60]!r}... leaves no room for a name: metric names are "
                             f"limited to {MAX_NAME_LENGTH} characters, namespace included")
        child = self._children.get(namespace)
        if child is None:  # cached so that collect() on one handle and flush() on another share a buffer
            child = MetricsLogger(self._exp, self._key, self._directory, (self._ns or "") + namespace + ".")
            child.__class__ = self.__class__  # outside a run like its parent (see set_in_run)
            self._children[namespace] = child
        return child

    def log(self, data: dict | None = None, /, step: int | None = None, **metrics: Any) -> None:
        """Log metrics now (``step`` optional): ``log(step=3, loss=x)``, or ``log({"loss": x}, step=3)`` (nested dicts
        become dotted names). Costs about a microsecond; never touches disk, network or GPU."""
        if data is not None:
            metrics, step = positional(data, step, metrics, "metrics.log")
        meta = self._meta
        for v in metrics.values():
            if type(v) not in _TYPES:
                row = _plain_row(metrics)  # _check_all, inlined: one Python frame less on every tensor call
                if row is None:
                    row = _check_each(metrics, "metrics.log")
                    if row is metrics:
                        meta = self._meta_convert  # the writer converts (device tensors, arrays): not its fast check
                metrics = row
                break
        if type(step) is not int:
            if step is not None:
                step = check_step(step, "metrics.log")
                if not _STEP_MIN <= step < _STEP_END:
                    raise step_out_of_range(step, "metrics.log")
        elif (step > 0x3FFFFFFF or step < -0x3FFFFFFF) and not _STEP_MIN <= step < _STEP_END:
            # The first test is not the limit: ints within +-(2**30 - 1) are "compact", which CPython compares with a
            # specialised bytecode when each comparison stands alone (not chained); the 64-bit bounds are not
            # compact and would take the generic comparison on every call (~2x the cost, measured with callgrind).
            raise step_out_of_range(step, "metrics.log")
        # The event is the kwargs dict itself, with two int keys appended (never a user's: those are str). A dict
        # of atomic values is untracked by the cyclic GC, so a long queue costs garbage collections nothing.
        metrics[meta] = _time()
        metrics[STEP_KEY] = step
        _Q.append(metrics)
        if len(_Q) >= _P.threshold:
            _P.slow_path()

    def collect(self, data: dict | None = None, /, step: int | None = None, **metrics: Any) -> None:
        """Keep metrics for aggregation by ``flush()``; nothing is written yet (a dict first, as ``log`` takes)."""
        if data is not None:
            metrics, step = positional(data, step, metrics, "metrics.collect")
        for k, v in metrics.items():
            if type(v) not in _TYPES:
                metrics[k] = self._collect_slow(k, v)
        if type(step) is not int and step is not None:
            step = check_step(step, "metrics.collect")
        if step is not None and not _STEP_MIN <= step < _STEP_END:
            raise step_out_of_range(step, "metrics.collect")
        self._collected.append((step, metrics))

    def _collect_slow(self, key: str, value: Any) -> Any:
        if type(value) in _CPU_READ:  # a CPU tensor's number, read now (see ml_dash.client.values.read_cpu_tensor)
            number = read_cpu_tensor(key, value, "metrics.collect")
            if number is not None:
                return number
        if is_torch_tensor(value):  # kept on its device; flush() copies all of them to the host at once
            if type(value) not in _CPU_READ:
                learn_tensor_type(type(value))
                if type(value) in _CPU_READ:
                    return self._collect_slow(key, value)
            from ml_dash.client.tensors import keep

            self._tensors = True
            return keep(key, value)
        return check_metric_value(key, value, "metrics.collect")

    def flush(self, /, _aggregation: str = "mean", step: int | None = None, **additional_metrics: Any) -> None:
        """Aggregate what ``collect()`` gathered (mean, sum, min, max or last) and log it with ``additional_metrics``."""
        if _aggregation not in _AGGREGATIONS:
            raise ValueError(f"metrics.flush: _aggregation must be one of {', '.join(_AGGREGATIONS)}; got {_aggregation!r}")
        additional_metrics = _check_all(additional_metrics, "metrics.flush")
        _check_names(self._ns, additional_metrics, "metrics.flush")
        step = check_step(step, "metrics.flush")
        if step is not None and not _STEP_MIN <= step < _STEP_END:
            raise step_out_of_range(step, "metrics.flush")
        rows, self._collected = self._collected, []
        if not rows and not additional_metrics:
            return
        if self._tensors:
            from ml_dash.client.tensors import defer_rows

            self._tensors = False
            rows = defer_rows(rows)  # one stack + one non-blocking copy per device and dtype
        # The writer aggregates: the caller hands over the list and goes on.
        _Q.append(aggregate_event(self._key, _time(), step, rows, _aggregation, additional_metrics, self._ns))
        if len(_Q) >= _P.threshold:
            _P.slow_path()

    def read(self, resolved: bool = False, superseded: bool = False) -> list[dict]:
        """Every metrics row logged so far (this process's pending rows included), oldest first.

        ``resolved=True``: the experiment's history as every reader shows it (docs/branches.md): the rows no later run
        superseded, after a fork parent's rows up to the fork step. ``superseded=True``: only the rows later runs
        superseded (kept, never deleted)."""
        from ml_dash.format.branches import history_rows, mark_of
        from ml_dash.format.jsonl import read_jsonl

        if not isinstance(resolved, bool) or not isinstance(superseded, bool):
            raise TypeError("metrics.read: resolved and superseded must be bools")
        self._exp.flush()
        if resolved or superseded:
            rows = history_rows(self._directory, superseded)
        else:
            rows = [row for row in read_jsonl(stream_path(self._directory, "metrics")) if mark_of(row) is None]
        for row in rows:
            decode_metrics(row.get("metrics") or {})
        if self._ns:
            ns = self._ns
            rows = [dict(r, metrics={k: v for k, v in r["metrics"].items() if k.startswith(ns)}) for r in rows]
            rows = [r for r in rows if r["metrics"]]
        return rows


class _OutsideRun(MetricsLogger):
    """A ``MetricsLogger`` while its experiment has no open run: the first call tells the experiment (which starts a
    run implicitly, or warns once after the run ended), then logs as usual. Swapping the class, not checking a flag,
    keeps the check off the hot path of a run."""

    __slots__ = ()

    def log(self, data: dict | None = None, /, step: int | None = None, **metrics: Any) -> None:
        if not self._exp.in_run:  # a bound method taken before the run started still ends up here
            self._exp.ensure_run("metrics.log")
        MetricsLogger.log(self, data, step, **metrics)

    def collect(self, data: dict | None = None, /, step: int | None = None, **metrics: Any) -> None:
        if not self._exp.in_run:  # a bound method taken before the run started still ends up here
            self._exp.ensure_run("metrics.collect")
        MetricsLogger.collect(self, data, step, **metrics)

    def flush(self, /, _aggregation: str = "mean", step: int | None = None, **additional_metrics: Any) -> None:
        if not self._exp.in_run:  # a bound method taken before the run started still ends up here
            self._exp.ensure_run("metrics.flush")
        MetricsLogger.flush(self, _aggregation, step, **additional_metrics)


def set_in_run(root: MetricsLogger, in_run: bool) -> None:
    """Switch a logger and its namespaced children between the plain class (a run is open) and ``_OutsideRun``."""
    cls = MetricsLogger if in_run else _OutsideRun
    todo = [root]
    while todo:
        logger = todo.pop()
        logger.__class__ = cls
        todo.extend(list(logger._children.values()))
