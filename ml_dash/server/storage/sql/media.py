"""Media rows (docs/media.md): what a media batch inserts, and the reads behind the media routes, written once for
both backends (``?`` placeholders, run by each backend's driver)."""
from __future__ import annotations

from typing import Any

import orjson

from ml_dash.server.errors import NotFound
from ml_dash.server.storage.sql.protocol import ROW, ROWS, reads

MEDIA_COLUMNS = ("experiment_pk", "run_pk", "key", "step", "timestamp", "item_index", "kind", "format", "sha256",
                 "byte_offset", "byte_length", "digest", "shape", "caption", "meta", "thumb_sha256", "thumb_offset",
                 "thumb_length")
HISTOGRAM_COLUMNS = ("experiment_pk", "run_pk", "key", "step", "timestamp", "bins", "edges", "counts")
INSERT_MEDIA = f"INSERT INTO media ({', '.join(MEDIA_COLUMNS)}) VALUES ({', '.join('?' * len(MEDIA_COLUMNS))})"
INSERT_HISTOGRAM = (f"INSERT INTO media_histograms ({', '.join(HISTOGRAM_COLUMNS)}) "
                    f"VALUES ({', '.join('?' * len(HISTOGRAM_COLUMNS))})")
ITEM_FIELDS = ("pk", "step", "timestamp", "item_index", "kind", "format", "byte_length", "digest", "shape", "caption",
               "meta", "thumb_length")


def media_rows(experiment_pk: int, run_pk: int | None, events: list[dict]) -> tuple[list[tuple], list[tuple]]:
    """(media rows, histogram rows) of a media batch's prepared events (``server.media.thumbnails.media_rows``)."""
    media, histograms = [], []
    for e in events:
        media.append((experiment_pk, run_pk, e["key"], e["step"], e["timestamp"], e["index"], e["kind"], e["format"],
                      e["sha256"], e["at"], e["length"], e["digest"], e["shape"], e["caption"], e["meta"],
                      e["thumb_sha256"], e["thumb_at"], e["thumb_length"]))
        if e["edges"] is not None:
            histograms.append((experiment_pk, run_pk, e["key"], e["step"], e["timestamp"], len(e["counts"]) // 8,
                               e["edges"], e["counts"]))
    return media, histograms


def _item(row: tuple) -> dict[str, Any]:
    item = dict(zip(ITEM_FIELDS, row))
    item["shape"], item["meta"] = orjson.loads(item["shape"]), orjson.loads(item["meta"])
    item["index"] = item.pop("item_index")
    item["thumbnail"] = item.pop("thumb_length") is not None
    return item


class MediaQueries:
    """The media reads of ``SQLStorage`` (mixed in; ``_experiment_pk`` is the storage's own)."""

    @reads
    def media_keys(self, experiment_id):
        pk = yield from self._experiment_pk(experiment_id)
        rows = yield ROWS, ("SELECT key, MIN(kind), COUNT(*), MIN(step), MAX(step) FROM media WHERE experiment_pk = ? "
                            "GROUP BY key ORDER BY key"), (pk,)
        return [{"key": r[0], "kind": r[1], "count": r[2], "step_min": r[3], "step_max": r[4]} for r in rows]

    @reads
    def media_items(self, experiment_id, key, step_min, step_max, limit, offset=0):
        """Items of ``key`` by step (then logging order), at most ``limit``; and how many match in all."""
        pk = yield from self._experiment_pk(experiment_id)
        where, args = "experiment_pk = ? AND key = ?", [pk, key]
        if step_min is not None:
            where, args = where + " AND step >= ?", [*args, step_min]
        if step_max is not None:
            where, args = where + " AND step <= ?", [*args, step_max]
        total = (yield ROW, f"SELECT COUNT(*) FROM media WHERE {where}", args)[0]
        rows = yield ROWS, (f"SELECT {', '.join(ITEM_FIELDS)} FROM media WHERE {where} ORDER BY step, pk "
                            "LIMIT ? OFFSET ?"), [*args, limit, offset]
        return [_item(r) for r in rows], total

    @reads
    def media_steps(self, experiment_id, key):
        """Every distinct step of ``key``, ascending (the dashboard's slider)."""
        pk = yield from self._experiment_pk(experiment_id)
        rows = yield ROWS, ("SELECT DISTINCT step FROM media WHERE experiment_pk = ? AND key = ? AND step IS NOT NULL "
                            "ORDER BY step"), (pk, key)
        return [r[0] for r in rows]

    @reads
    def media_blob(self, experiment_id, item_pk, thumbnail):
        """(sha256, offset, length, format, kind) of one item's bytes or its thumbnail; NotFound if it has none."""
        pk = yield from self._experiment_pk(experiment_id)
        columns = "thumb_sha256, thumb_offset, thumb_length" if thumbnail else "sha256, byte_offset, byte_length"
        row = yield ROW, f"SELECT {columns}, format, kind FROM media WHERE experiment_pk = ? AND pk = ?", (pk, item_pk)
        if row is None or row[0] is None:
            raise NotFound(f"no media item {item_pk} {'thumbnail ' if thumbnail else ''}in experiment {experiment_id!r}")
        return row

    @reads
    def media_histograms(self, experiment_id, key, step_min, step_max, limit):
        """(step, edges bytes, counts bytes) of ``key`` by step, at most ``limit`` rows; and the count that match."""
        pk = yield from self._experiment_pk(experiment_id)
        where, args = "experiment_pk = ? AND key = ?", [pk, key]
        if step_min is not None:
            where, args = where + " AND step >= ?", [*args, step_min]
        if step_max is not None:
            where, args = where + " AND step <= ?", [*args, step_max]
        total = (yield ROW, f"SELECT COUNT(*) FROM media_histograms WHERE {where}", args)[0]
        rows = yield ROWS, (f"SELECT step, edges, counts FROM media_histograms WHERE {where} ORDER BY step, pk "
                            "LIMIT ?"), [*args, limit]
        if not rows and total == 0:
            exists = yield ROW, "SELECT 1 FROM media WHERE experiment_pk = ? AND key = ? LIMIT 1", (pk, key)
            if exists is None:
                raise NotFound(f"no histogram {key!r} in experiment {experiment_id!r}")
        return [(r[0], bytes(r[1]), bytes(r[2])) for r in rows], total
