"""``Api`` on a server: experiment pages and edits through GraphQL, series, logs and files through REST.

Answers are JSON or msgpack only (never unpickled). urllib is imported when a request is made, so ``import ml_dash``
pays nothing for it.
"""
from __future__ import annotations

import os
import shutil
from typing import Any
from urllib.parse import quote, urlencode

import msgpack
import numpy as np
import orjson

from ml_dash.query.errors import ApiError
from ml_dash.format.layout import SYSTEM_PREFIX
from ml_dash.format.names import check_segments, natural_key
from ml_dash.format.values import TEXT_TO_NONFINITE

PAGE_SIZE = 2_000  # experiments per GraphQL request when listing


def _zstd():
    try:
        import zstandard  # optional: without it answers come gzipped
    except ImportError:
        return None
    return zstandard


# What GraphQL and REST reads accept (file downloads ask for the bytes as stored). The server compresses answers
# past a kilobyte (server/http/compression.py): a 1,000-run page is ~4× smaller.
ACCEPT_ENCODING = "zstd, gzip" if _zstd() else "gzip"


def _decoded(answer) -> bytes:
    """An answer's body, inflated as its ``Content-Encoding`` says (urllib leaves that to its caller)."""
    body = answer.read()
    encoding = (answer.headers.get("Content-Encoding") or "identity").strip().lower()
    if encoding == "gzip":
        import gzip

        return gzip.decompress(body)
    if encoding == "zstd" and _zstd():
        # A frame may not record its content size: decompressobj reads it whole either way.
        return _zstd().ZstdDecompressor().decompressobj().decompress(body)
    if encoding != "identity":
        raise ApiError(f"the server answered in an encoding this client cannot read: {encoding}")
    return body
RECORD = ("id namespace workspace directory prefix status params tags notes deletedAt startedAt completedAt "
          "lastMetrics readme hostname")


def _record(node: dict[str, Any]) -> dict[str, Any]:
    return {"id": node["id"], "namespace": node["namespace"], "workspace": node["workspace"],
            "directory": node["directory"] or None, "prefix": node["prefix"], "status": node["status"],
            "params": node["params"] or {}, "tags": node["tags"], "notes": node["notes"],
            "last_metrics": {k: TEXT_TO_NONFINITE.get(v, v) if type(v) is str else v
                             for k, v in (node["lastMetrics"] or {}).items()},
            "started_at": node["startedAt"], "completed_at": node["completedAt"], "deleted_at": node["deletedAt"],
            "readme": node["readme"], "hostname": node["hostname"], "path": None}


class RemoteSource:
    def __init__(self, base_url: str, token: str | None, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    # -- HTTP -----------------------------------------------------------------------------------------------------
    def _open(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        import urllib.error
        import urllib.request

        headers = dict(headers or {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.base_url + path, data=body, method=method, headers=headers)
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as error:
            detail = _decoded(error)[:2000].decode(errors="replace")
            try:
                parsed = orjson.loads(detail)
                detail = "; ".join(e.get("message", "") for e in parsed.get("errors", [])) or parsed.get(
                    "error") or detail
            except (orjson.JSONDecodeError, AttributeError):
                pass
            raise ApiError(f"{method} {path}: HTTP {error.code}: {detail}") from None
        except OSError as error:
            raise ApiError(f"cannot reach the ml-dash server at {self.base_url}: {error}") from None

    def graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        with self._open("POST", "/graphql", orjson.dumps({"query": query, "variables": variables}),
                        {"Content-Type": "application/json", "Accept-Encoding": ACCEPT_ENCODING}) as answer:
            body = orjson.loads(_decoded(answer))
        if body.get("errors"):
            raise ApiError("; ".join(e.get("message", "") for e in body["errors"]))
        return body["data"]

    def rest(self, path: str) -> Any:
        with self._open("GET", "/api/v1" + path, headers={"Accept": "application/msgpack",
                                                           "Accept-Encoding": ACCEPT_ENCODING}) as answer:
            return msgpack.unpackb(_decoded(answer), raw=False, strict_map_key=False)

    # -- experiments ----------------------------------------------------------------------------------------------
    def experiments(self, namespace: str | None, workspace: str | None, filter_text: str | None,
                    order_text: str | None, limit: int | None, include_deleted: bool) -> tuple[int, list[dict]]:
        query = ("query($ns: String, $ws: String, $f: String, $o: String, $limit: Int, $offset: Int, $d: Boolean) {"
                 " experimentPage(namespace: $ns, workspace: $ws, filter: $f, orderBy: $o, limit: $limit,"
                 f" offset: $offset, includeDeleted: $d) {{ total items {{ {RECORD} }} }} }}")
        found: list[dict] = []
        total = None
        while total is None or (len(found) < total and (limit is None or len(found) < limit)):
            size = PAGE_SIZE if limit is None else min(PAGE_SIZE, limit - len(found))
            page = self.graphql(query, {"ns": namespace, "ws": workspace, "f": filter_text, "o": order_text,
                                        "limit": size, "offset": len(found), "d": include_deleted})["experimentPage"]
            total = page["total"]
            found.extend(_record(node) for node in page["items"])
            if not page["items"]:
                break
        return total or 0, found

    def experiment(self, key: str) -> dict[str, Any]:
        """By id, or by its ``namespace/workspace/[directory/]prefix`` path (as ``ml-dash ls`` prints it)."""
        data = self.graphql(f"query($id: ID!) {{ experiment(id: $id) {{ {RECORD} }} }}", {"id": key})
        if data["experiment"] is not None:
            return _record(data["experiment"])
        parts = key.strip("/").split("/")
        if len(parts) >= 3:
            rest = "/".join(parts[2:])
            found = [r for r in self.experiments(parts[0], parts[1], None, None, None, True)[1]
                     if "/".join(p for p in (r["directory"], r["prefix"]) if p) == rest]
            if len(found) == 1:
                return found[0]
        raise LookupError(f"no experiment {key!r} on {self.base_url} (give its id or its namespace/workspace/prefix)")

    # -- data -----------------------------------------------------------------------------------------------------
    def _experiment_path(self, record: Any) -> str:
        return f"/experiments/{quote(record.id, safe='')}"

    def metric_names(self, record: Any) -> list[str]:
        # the system sampler's series live apart (system.jsonl locally): history() is the run's own metrics
        return [n for n in self.rest(self._experiment_path(record) + "/metrics")["names"]
                if not n.startswith(SYSTEM_PREFIX)]

    def ranks(self, record: Any) -> list[int]:
        runs = self.rest(self._experiment_path(record)).get("runs") or []
        return sorted({r.get("rank") or 0 for r in runs}) or [0]

    def series(self, record: Any, names: list[str], step_min: float | None, step_max: float | None,
               max_points: int | None, superseded: bool = False, rank: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        import math

        query = {k: v for k, v in (("step_min", None if step_min is None else math.ceil(step_min)),
                                   ("step_max", None if step_max is None else math.floor(step_max)),
                                   ("max_points", max_points), ("superseded", 1 if superseded else None),
                                   ("rank", rank or None)) if v is not None}
        known = set(self.metric_names(record)) if not rank else None  # the listing is rank 0's
        out = {}
        for name in names:
            if known is not None and name not in known:
                continue
            try:
                answer = self.rest(f"{self._experiment_path(record)}/metrics/{quote(name, safe='')}"
                                   + (f"?{urlencode(query)}" if query else ""))
            except ApiError as error:
                if known is None and "HTTP 404" in str(error):
                    continue  # this rank did not log that metric
                raise
            # float64 conversion reads None as NaN and the JSONL spellings ("NaN", "Infinity") as what they say
            out[name] = (np.array(answer["steps"], dtype=np.float64), np.array(answer["values"], dtype=np.float64))
        return out

    def summary(self, record: Any) -> dict[str, dict[str, Any]]:
        data = self.graphql("query($id: ID!) { experiment(id: $id) { metricSummary { name last min max count } } }",
                            {"id": record.id})
        if data["experiment"] is None:
            raise LookupError(f"no experiment {record.id!r} on {self.base_url}")
        return {m["name"]: {"last": TEXT_TO_NONFINITE.get(m["last"], m["last"]) if type(m["last"]) is str
                            else m["last"], "min": m["min"], "max": m["max"], "count": m["count"]}
                for m in data["experiment"]["metricSummary"]}

    def step_times(self, record: Any) -> tuple[np.ndarray, np.ndarray]:
        """(step, timestamp) anchors of the run's first metric (up to 10,000: the server's step-times answer)."""
        names = self.metric_names(record)
        if not names:
            return np.empty(0), np.empty(0)
        query = urlencode({"name": names[0], "max_points": 10_000})
        with self._open("GET", f"/api/v1{self._experiment_path(record)}/step-times?{query}",
                        headers={"Accept-Encoding": ACCEPT_ENCODING}) as answer:
            answer = orjson.loads(_decoded(answer))  # this route answers JSON only
        return np.array(answer["steps"], dtype=np.float64), np.array(answer["timestamps"], dtype=np.float64)

    def logs(self, record: Any, level: str | None, limit: int | None) -> list[dict[str, Any]]:
        query = {k: v for k, v in (("level", level), ("limit", limit)) if v is not None}
        return self.rest(self._experiment_path(record) + "/logs" + (f"?{urlencode(query)}" if query else ""))["logs"]

    def environment(self, record: Any) -> dict[str, Any] | None:
        try:
            data = self.graphql("query($id: ID!) { experiment(id: $id) { environment } }", {"id": record.id})
        except ApiError as error:
            if "environment" in str(error):  # a server from before run environments were recorded
                return None
            raise
        found = (data["experiment"] or {}).get("environment")
        return found if isinstance(found, dict) else None

    def files(self, record: Any) -> list[dict[str, Any]]:
        found = self.rest(self._experiment_path(record) + "/files")["files"]
        return sorted(({"path": f["path"], "size": f["size"]} for f in found), key=lambda f: natural_key(f["path"]))

    def download(self, record: Any, path: str, to: str) -> str:
        path = check_segments("path", path)
        target = os.path.join(to, os.path.basename(path)) if os.path.isdir(to) else to
        url = "/api/v1" + self._experiment_path(record) + "/files/" + quote(path, safe="/")
        with self._open("GET", url) as answer, open(target, "wb") as out:
            shutil.copyfileobj(answer, out, 1 << 20)
        return target

    def media_keys(self, record: Any) -> list[dict[str, Any]]:
        return self.rest(self._experiment_path(record) + "/media")["keys"]

    def media_items(self, record: Any, key: str, step_min: float | None, step_max: float | None):
        import math

        query = {k: v for k, v in (("step_min", None if step_min is None else math.ceil(step_min)),
                                   ("step_max", None if step_max is None else math.floor(step_max))) if v is not None}
        offset = 0
        while True:
            page = self.rest(f"{self._experiment_path(record)}/media/{quote(key, safe='')}?"
                             + urlencode({**query, "limit": 1000, "offset": offset}))
            for item in page["items"]:
                with self._open("GET", item["url"]) as answer:
                    yield item, answer.read()
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return

    def histograms(self, record: Any, key: str, step_min: float | None, step_max: float | None) -> dict[str, Any]:
        import math

        from ml_dash.query.media import histogram_arrays

        query = {k: v for k, v in (("step_min", None if step_min is None else math.ceil(step_min)),
                                   ("step_max", None if step_max is None else math.floor(step_max)),
                                   ("limit", 200_000)) if v is not None}
        answer = self.rest(f"{self._experiment_path(record)}/histograms/{quote(key, safe='')}?{urlencode(query)}")
        return histogram_arrays(list(zip(answer["steps"], answer["edges"], answer["counts"])))

    def set_deleted(self, record: Any, deleted: bool) -> float | None:
        field = "deleteExperiment" if deleted else "restoreExperiment"
        data = self.graphql(f"mutation($id: ID!) {{ {field}(id: $id) {{ deletedAt }} }}", {"id": record.id})
        if data[field] is None:
            raise LookupError(f"no experiment {record.id!r} on {self.base_url}")
        return data[field]["deletedAt"]
