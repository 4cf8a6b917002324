"""Branches: which points of an experiment's history a read shows when runs resume, rerun or fork (docs/branches.md).

Every run of an experiment is a *segment* of one history. A run that begins at step ``s`` (its ``branch_step``:
declared with ``resume_step=``, else its first logged step) supersedes every point of the runs of earlier-started jobs
at steps ``>= s``; a run with no branch step (``append=True``) supersedes nothing. Between the ranks of one job (same
``job``) nothing is superseded. So each run has a **cutoff**, the smallest branch step of the runs of later-started
jobs (infinity if none), computed from run metadata alone, and a point at step ``t`` of that run is *visible* iff
``t < cutoff`` (a point logged without a step is always visible). Superseded points are never deleted.

A fork starts from its parent's visible history up to ``fork_step`` (included): the parent is one more segment,
before all of the child's runs, whose cutoff is the smaller of ``fork_step``'s successor and the child's own cutoffs.

This module is the one statement of that rule: the local reader, the query API and the server all call ``cutoffs``.
It also defines the **run mark**: the line the writer puts in ``metrics.jsonl`` before a run's first metric row, so the
file itself says which rows belong to which run (and the uploader attributes byte ranges to runs exactly, offline too).
"""
from __future__ import annotations

import math
from typing import Any, Hashable, Iterable, Sequence

INF = math.inf
MARK_KEY = "run"  # a metrics row ``{"timestamp", "step": null, "metrics": {}, "run": {...}}`` is a run mark
MARK_BYTES = b'"metrics":{},"run":{'  # how the uploader finds a mark in a batch's bytes (no metric row holds it)
# A mark's fields: ``id`` (the client run id), ``started_at``, ``branch_step`` (null: append), ``hostname``.


def cutoffs(runs: Sequence[tuple[Hashable, Hashable, float | None]]) -> dict[Hashable, float]:
    """``{run: cutoff}`` for ``runs`` given in start order as ``(run, job, branch_step)``; ``branch_step`` None means
    the run supersedes nothing. A job's place is its first run's; runs of one job never supersede each other."""
    first: dict[Hashable, int] = {}
    lowest: dict[Hashable, float] = {}
    for index, (_run, job, branch) in enumerate(runs):
        first.setdefault(job, index)
        if branch is not None and branch < lowest.get(job, INF):
            lowest[job] = float(branch)
    cut: dict[Hashable, float] = {}
    later = INF
    for job in sorted(first, key=first.__getitem__, reverse=True):
        cut[job] = later
        later = min(later, lowest.get(job, INF))
    return {run: cut[job] for run, job, _branch in runs}


def fork_cutoff(fork_step: float, child_runs: Iterable[float | None]) -> float:
    """The cutoff of a fork's parent history: its points at steps ``<= fork_step`` that no run of the child
    supersedes (``child_runs``: the child's branch steps)."""
    bound = math.nextafter(float(fork_step), INF)
    return min([bound, *(float(b) for b in child_runs if b is not None)])


def visible(step: Any, cutoff: float) -> bool:
    """Whether a point at ``step`` (None or NaN: logged without a step) of a run with ``cutoff`` is visible."""
    return step is None or step != step or step < cutoff


def mark_of(row: dict) -> dict | None:
    """The run mark a metrics row is, or None for a row of metrics."""
    mark = row.get(MARK_KEY)
    return mark if type(mark) is dict and not row.get("metrics") else None


def mark_row(timestamp: float, mark: dict) -> dict:
    """The metrics row that records ``mark`` (the writer's; ``MARK_BYTES`` must stay its spelling)."""
    return {"timestamp": timestamp, "step": None, "metrics": {}, MARK_KEY: mark}


def check_step(value: Any, name: str) -> int | None:
    """A branch or fork step as the caller gave it: an int (not a bool) or None; else a clear error naming ``name``."""
    if value is None:
        return None
    if type(value) is bool or not isinstance(value, int):
        raise TypeError(f"{name} must be an int step or None, got {type(value).__name__} {value!r}")
    return int(value)


def segments(rows: Iterable[dict]) -> tuple[list[tuple[Any, Any, float | None]], list[tuple[Any, dict]]]:
    """Split a metrics file's rows by their run marks: ``(runs, tagged)``, where ``runs`` are ``(id, job, branch)``
    in file order (rows before any mark: run ``None``, which supersedes nothing) and ``tagged`` the metric rows as
    ``(run id, row)`` in file order. A mark seen again (a forked child writing its parent's) starts no new run."""
    runs: list[tuple[Any, Any, float | None]] = []
    seen: set = set()
    tagged: list[tuple[Any, dict]] = []
    current = None
    for row in rows:
        mark = mark_of(row)
        if mark is None:
            if current is None and None not in seen:
                seen.add(None)
                runs.insert(0, (None, None, None))
            tagged.append((current, row))
            continue
        current = mark.get("id")
        if current not in seen:
            seen.add(current)
            branch = mark.get("branch_step")
            runs.append((current, mark.get("job") or current,
                         branch if type(branch) in (int, float) and branch == branch else None))
    return runs, tagged


def resolve_rows(rows: Iterable[dict], superseded: bool = False) -> tuple[list[dict], list[float | None]]:
    """The metric rows of one metrics file that are visible (``superseded``: those that are not), in file order,
    and the file's runs' branch steps (a fork's child needs them for its parent's cutoff)."""
    runs, tagged = segments(rows)
    cut = cutoffs(runs)
    keep = [row for run, row in tagged if visible(row.get("step"), cut[run]) != superseded]
    return keep, [branch for _run, _job, branch in runs]


# -- the client's side: declared branches, forks, and the runs the meta file lists -------------------------------------
MAX_META_RUNS = 1000  # runs the meta file lists (newest kept): `ml-dash sync` registers these


def check_branch(resume_step: Any, append: Any, where: str) -> tuple[int | None, bool]:
    """``(resume_step, append)`` checked: where the next run branches (None: at its first logged step)."""
    step = check_step(resume_step, f"{where}: resume_step")
    if not isinstance(append, bool):
        raise TypeError(f"{where}: append must be a bool, got {type(append).__name__} {append!r}")
    if append and step is not None:
        raise ValueError(f"{where}: resume_step={step} and append=True contradict each other (append supersedes "
                         f"nothing); pass one of them")
    return step, append


def check_fork(fork_from: Any, fork_step: Any, recorded: Any) -> dict:
    """The meta's ``fork`` entry for ``Experiment(fork_from=..., fork_step=...)``: the parent (a prefix, as
    ``directory/prefix`` within the same namespace and workspace, or an experiment id) and the last step taken from
    it. An experiment is forked once: asking again with another parent or step is an error."""
    if not isinstance(fork_from, str) or not fork_from or "\x00" in fork_from:
        raise ValueError(f"Experiment: fork_from must name the parent experiment (its prefix or id), got {fork_from!r}")
    step = check_step(fork_step, "Experiment: fork_step")
    if step is None:
        raise ValueError("Experiment: fork_from needs fork_step, the last step of the parent's history to start from")
    fork = {"parent": fork_from.strip("/"), "step": step}
    if isinstance(recorded, dict) and (recorded.get("parent"), recorded.get("step")) != (fork["parent"], step):
        raise ValueError(f"Experiment: this experiment was forked from {recorded.get('parent')!r} at step "
                         f"{recorded.get('step')}; it cannot be forked again from {fork_from!r} at step {step}")
    return fork


def start_mark(meta: dict, branch: tuple[int | None, bool]) -> dict:
    """A new run in the meta file (its ``client_run_id`` and the ``runs`` list) and its mark for the writer;
    ``branch_step`` ``"first"`` asks the writer for the run's first logged step."""
    import uuid

    step, append = branch
    run_id = uuid.uuid4().hex
    mark = {"id": run_id, "started_at": meta.get("started_at"), "hostname": meta.get("hostname"),
            "branch_step": None if append else ("first" if step is None else step)}
    if meta.get("fork"):
        mark["fork"] = True  # written even as the first metrics: the fork's branch clips its parent's history
    meta["client_run_id"] = run_id
    runs = [r for r in meta.get("runs") or [] if isinstance(r, dict)][-(MAX_META_RUNS - 1):]
    meta["runs"] = runs + [{"id": run_id, "started_at": meta.get("started_at"), "hostname": meta.get("hostname"),
                            "status": "running", "resume_step": step, "append": append}]
    return mark


def end_mark(meta: dict) -> None:
    """The meta's latest run takes the run's end (status, error, time)."""
    runs = meta.get("runs")
    last = runs[-1] if isinstance(runs, list) and runs else None
    if isinstance(last, dict) and last.get("id") == meta.get("client_run_id"):
        last.update(status=meta.get("status"), completed_at=meta.get("completed_at"), error=meta.get("error"))


# -- a local experiment's history, resolved ---------------------------------------------------------------------------
MAX_FORK_DEPTH = 64  # a chain of forks deeper than this (or a cycle of hand-edited meta files) stops there


def fork_parent_path(path: str, meta: dict) -> str | None:
    """The local directory of the experiment ``path`` was forked from (its ``fork.parent`` under the same namespace
    and workspace), or None when it is not forked or its parent is not on this machine."""
    import os

    from ml_dash.format.layout import is_experiment

    fork = meta.get("fork")
    if not isinstance(fork, dict) or not isinstance(fork.get("parent"), str):
        return None
    depth = len([p for p in (meta.get("directory") or "").split("/") if p]) + \
        len([p for p in (meta.get("prefix") or "").split("/") if p])
    workspace_dir = path
    for _ in range(depth):
        workspace_dir = os.path.dirname(workspace_dir)
    parent = os.path.join(workspace_dir, *[p for p in fork["parent"].split("/") if p not in ("", ".", "..")])
    return parent if parent != path and is_experiment(parent) else None


def history_rows(path: str, superseded: bool = False, _depth: int = 0) -> list[dict]:
    """The metric rows of the local experiment at ``path`` as its history shows them: its visible rows, after those
    of its fork parent's history up to the fork step (parent first, each in file order). ``superseded``: its own
    superseded rows instead (a fork's parent keeps its own)."""
    from ml_dash.format.jsonl import read_jsonl
    from ml_dash.format.layout import read_meta, stream_path

    meta = read_meta(path)
    own, branches = resolve_rows(read_jsonl(stream_path(path, "metrics")), superseded)
    parent = None if superseded or _depth >= MAX_FORK_DEPTH else fork_parent_path(path, meta)
    if parent is None:
        return own
    cutoff = fork_cutoff(meta["fork"]["step"], branches)
    inherited = [row for row in history_rows(parent, False, _depth + 1) if visible(row.get("step"), cutoff)]
    return inherited + own


def split_at_mark(lines: bytes) -> tuple[bytes, dict | None]:
    """A batch's whole lines cut so that a run mark can only be its first line: ``(lines, mark)``, the lines up to
    the next mark, and the first line's mark (blanked in ``lines``: the server skips blank lines, the byte offsets
    stay exact, and the mark reaches the server as the run's registration) or None."""
    import orjson

    first = lines.find(b"\n") + 1
    mark = None
    if MARK_BYTES in lines[:first]:
        try:
            row = orjson.loads(lines[:first])
            mark = mark_of(row) if isinstance(row, dict) else None
        except orjson.JSONDecodeError:
            mark = None
    after = lines.find(MARK_BYTES, first if mark is not None else 0)
    if after >= 0:
        cut = lines.rfind(b"\n", 0, after) + 1
        if cut > 0:
            lines = lines[:cut]
    if mark is not None:
        lines = b" " * (first - 1) + b"\n" + lines[first:]
    return lines, mark
