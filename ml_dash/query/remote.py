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
from ml_dash.format.names import check_segments
from ml_dash.format.values import TEXT_TO_NONFINITE

PAGE_SIZE = 2_000  # experiments per GraphQL request when listing
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
            detail = error.read()[:2000].decode(errors="replace")
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
                        {"Content-Type": "application/json"}) as answer:
            body = orjson.loads(answer.read())
        if body.get("errors"):
            raise ApiError("; ".join(e.get("message", "") for e in body["errors"]))
        return body["data"]

    def rest(self, path: str) -> Any:
        with self._open("GET", "/api/v1" + path, headers={"Accept": "application/msgpack"}) as answer:
            return msgpack.unpackb(answer.read(), raw=False, strict_map_key=False)

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
        data = self.graphql(f"query($id: ID!) {{ experiment(id: $id) {{ {RECORD} }} }}", {"id": key})
        if data["experiment"] is None:
            raise LookupError(f"no experiment {key!r} on {self.base_url}")
        return _record(data["experiment"])

    # -- data -----------------------------------------------------------------------------------------------------
    def _experiment_path(self, record: Any) -> str:
        return f"/experiments/{quote(record.id, safe='')}"

    def metric_names(self, record: Any) -> list[str]:
        # the system sampler's series live apart (system.jsonl locally): history() is the run's own metrics
        return [n for n in self.rest(self._experiment_path(record) + "/metrics")["names"]
                if not n.startswith(SYSTEM_PREFIX)]

    def series(self, record: Any, names: list[str], step_min: float | None, step_max: float | None,
               max_points: int | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        import math

        query = {k: v for k, v in (("step_min", None if step_min is None else math.ceil(step_min)),
                                   ("step_max", None if step_max is None else math.floor(step_max)),
                                   ("max_points", max_points)) if v is not None}
        known = set(self.metric_names(record))
        out = {}
        for name in names:
            if name not in known:
                continue
            answer = self.rest(f"{self._experiment_path(record)}/metrics/{quote(name, safe='')}"
                               + (f"?{urlencode(query)}" if query else ""))
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
        return sorted(({"path": f["path"], "size": f["size"]} for f in found), key=lambda f: f["path"])

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
