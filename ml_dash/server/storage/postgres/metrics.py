"""PostgreSQL metric writes: columnar chunk rows (see ``series.chunks``), a whole batch in a few array statements.

Reads are shared (``sql.storage``), and so are the series-state bookkeeping and the merge policy (``sql.metrics``).
What is PostgreSQL's own: every name of a batch goes in one ``unnest`` statement per step (a statement is a round
trip), row locks taken in name order, and last values with exact 64-bit ints beside floats.
``MetricRows`` is built before a batch's transaction and written inside it.
"""
from __future__ import annotations

import math
from typing import Any

import asyncpg

from ml_dash.server.series.batch import MetricBatch
from ml_dash.server.series.types import (
    VALUE_KIND_BOOL,
    VALUE_KIND_NAN,
    VALUE_KIND_NULL,
    VALUE_KIND_NUMBER,
)
from ml_dash.server.storage.sql import metrics as shared

_INT64 = (-(2**63), 2**63)


class MetricRows:
    """One chunk per metric name in the batch; a small tail chunk of the same run absorbs it instead (as in SQLite)."""

    def __init__(self, events: list[dict] | MetricBatch, experiment_pk: int, run_pk: int | None) -> None:
        self.experiment_pk, self.run_pk = experiment_pk, run_pk
        batch = MetricBatch.of_events(events)
        # Sorted: every batch locks its names' rows in the same order, so two batches cannot deadlock.
        self.names = sorted(batch.names)
        self.chunks = [batch.chunks[name] for name in self.names]
        self.lasts = [encode_last(batch.last[name][2]) for name in self.names]
        self.count = batch.count

    async def write(self, conn: asyncpg.Connection) -> int:
        if not self.names:
            return self.count
        # Create the names (race-free across workers) and lock their rows; read each series' state.
        state = {r["name"]: r for r in await conn.fetch(
            "INSERT INTO metric_names (experiment_pk, name) SELECT $1, unnest($2::text[]) "
            "ON CONFLICT (experiment_pk, name) DO UPDATE SET name = EXCLUDED.name "
            "RETURNING name, pk, step_hi, ordered, tail_pk", self.experiment_pk, self.names)}
        name_pks = [state[n]["pk"] for n in self.names]
        # Small tails of the same run are taken out and come back merged with the new points, under a fresh pk
        # (MERGE_BELOW read from ``sql.metrics`` at each batch, so a test can monkeypatch it there).
        tails = {r["name_pk"]: r for r in await conn.fetch(
            f"DELETE FROM metric_chunks WHERE pk = ANY($1::int8[]) AND n < {int(shared.MERGE_BELOW)} "
            "AND run_pk IS NOT DISTINCT FROM $2 RETURNING name_pk, steps, vals, kinds, timestamps, codec",
            [state[n]["tail_pk"] for n in self.names if state[n]["tail_pk"] is not None], self.run_pk)}
        stored, step_his, ordered = [], [], []
        for name, name_pk, chunk in zip(self.names, name_pks, self.chunks):
            tail = tails.get(name_pk)
            if tail is not None:
                tail = {"steps": tail["steps"], "values": tail["vals"], "kinds": tail["kinds"],
                        "timestamps": tail["timestamps"], "codec": tail["codec"]}
            row, hi, still_ordered = shared.next_chunk(chunk, state[name]["step_hi"], state[name]["ordered"], tail)
            stored.append(row)
            step_his.append(hi)
            ordered.append(still_ordered)
        new_pks = dict(await conn.fetch(
            "INSERT INTO metric_chunks (name_pk, run_pk, n, step_min, step_max, steps, vals, kinds, timestamps, "
            "summary, codec) SELECT name_pk, $1, n, step_min, step_max, steps, vals, kinds, timestamps, summary, codec "
            "FROM unnest($2::int8[], $3::int4[], $4::float8[], $5::float8[], $6::bytea[], $7::bytea[], $8::bytea[], "
            "$9::bytea[], $10::bytea[], $11::int2[]) AS c(name_pk, n, step_min, step_max, steps, vals, kinds, "
            "timestamps, summary, codec) RETURNING name_pk, pk",
            self.run_pk, name_pks, [c.n for c in stored], [c.step_min for c in stored], [c.step_max for c in stored],
            [c.steps for c in stored], [c.values for c in stored], [c.kinds for c in stored],
            [c.timestamps for c in stored], [c.summary for c in stored], [c.codec for c in stored]))
        await conn.execute(
            "UPDATE metric_names m SET last_num = u.num, last_int = u.int, last_kind = u.kind, step_hi = u.hi, "
            "ordered = u.ordered, tail_pk = u.tail FROM unnest($1::int8[], $2::float8[], $3::int8[], $4::int2[], "
            "$5::float8[], $6::bool[], $7::int8[]) AS u(pk, num, int, kind, hi, ordered, tail) WHERE m.pk = u.pk",
            name_pks, [x[0] for x in self.lasts], [x[1] for x in self.lasts], [x[2] for x in self.lasts],
            step_his, ordered, [new_pks[pk] for pk in name_pks])
        return self.count


# --- last values: exact 64-bit ints beside floats ---

def encode_last(value: Any) -> tuple[float | None, int | None, int]:
    if value is None:
        return None, None, VALUE_KIND_NULL
    if value is True or value is False:
        return None, int(value), VALUE_KIND_BOOL
    if type(value) is int and _INT64[0] <= value < _INT64[1]:
        return None, value, VALUE_KIND_NUMBER
    if type(value) not in (int, float):
        raise TypeError(f"cannot store a metric value of type {type(value).__name__}")
    if value != value:
        return None, None, VALUE_KIND_NAN
    return float(value), None, VALUE_KIND_NUMBER


def decode_last(num: float | None, integer: int | None, kind: int) -> Any:
    if kind == VALUE_KIND_BOOL:
        return bool(integer)
    if kind == VALUE_KIND_NAN:
        return math.nan
    if kind == VALUE_KIND_NULL:
        return None
    return integer if integer is not None else num
