"""REST endpoints under ``/api/v1`` (see docs/protocol.md for the contract)."""
from __future__ import annotations

import asyncio
from typing import Any

import msgpack
from aiohttp import web

from ml_dash.format.layout import RUN_STATUSES
from ml_dash.format.params import replay
from ml_dash.server.errors import BadRequest, BrokenBody, NotFound, PayloadTooLarge
from ml_dash.server.files.base import check_file_path
from ml_dash.server.http.auth import allowed_namespaces, check_namespace
from ml_dash.server.http.batch_order import client_gone
from ml_dash.server.http.keys import BLOBS_KEY, CONFIG_KEY, DECODER_KEY, ORDER_KEY, STORAGE_KEY
from ml_dash.server.http.responses import json_response
from ml_dash.server.http.security import SECURITY_HEADERS, attachment
from ml_dash.server.ingest import MAX_REJECTED_REPORTED, Validator, decode_body, read_stream, timed_chunks
from ml_dash.server.ingest_pool import OFF_LOOP_BYTES
from ml_dash.server.series.downsample import series_result

routes = web.RouteTableDef()
API = "/api/v1"
EXPERIMENT = API + "/experiments/{experiment_id}"
MAX_QUERY_POINTS = 1_000_000


def respond(request: web.Request, data: Any, status: int = 200) -> web.Response:
    if "application/msgpack" in request.headers.get("Accept", ""):
        return web.Response(body=msgpack.packb(data), status=status, content_type="application/msgpack")
    return json_response(data, status)


def validator(request: web.Request) -> Validator:
    config = request.app[CONFIG_KEY]
    return Validator(config.max_name_length, config.max_events, config.max_body_items)


async def read_raw(request: web.Request) -> bytes:
    """The body's bytes (inflated if gzip) within ``max_body_bytes`` (413) and the body timeouts (408)."""
    config = request.app[CONFIG_KEY]
    if request.content_length is not None and request.content_length > config.max_body_bytes:
        raise PayloadTooLarge(f"request body of {request.content_length} bytes exceeds {config.max_body_bytes}")
    if not request.body_exists:
        return b""
    try:
        return await read_stream(request.content, config.max_body_bytes, config.body_timeout, config.body_idle_timeout)
    except web.RequestPayloadError as exc:  # e.g. a body claiming gzip that is not
        raise BrokenBody(f"malformed request body: {exc}") from None


async def read_body(request: web.Request, then: Any = None) -> Any:
    """The decoded body; ``then(decoded)`` (a validation) runs with the decode, in a thread for a large body."""
    config = request.app[CONFIG_KEY]
    raw = await read_raw(request)
    content_type = request.content_type if request.body_exists else ""

    def decode() -> Any:
        body = decode_body(raw, content_type, config.max_body_items, config.max_json_bytes)
        return body if then is None else then(body)

    return await asyncio.to_thread(decode) if len(raw) > OFF_LOOP_BYTES else decode()


async def authorized_experiment(request: web.Request) -> dict[str, Any]:
    """The experiment named in the URL, after checking the token may see its namespace (404 before 403 is fine:
    ids are unguessable random hex)."""
    experiment = await request.app[STORAGE_KEY].get_experiment(request.match_info["experiment_id"])
    check_namespace(allowed_namespaces(request), experiment["namespace"])
    return experiment


def public(experiment: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in experiment.items() if k != "pk"}


def int_query(request: web.Request, key: str, default: int | None, lo: int, hi: int) -> int | None:
    raw = request.query.get(key)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"query parameter {key!r} must be an integer") from None
    if not lo <= value <= hi:
        raise BadRequest(f"query parameter {key!r} must be between {lo} and {hi}")
    return value


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    return json_response({"ok": True, "protocol": 1})


@routes.post(API + "/experiments")
async def create_experiment(request: web.Request) -> web.Response:
    v = validator(request)
    body = v.obj(await read_body(request))
    namespace = v.path_name(body, "namespace", nested=False)
    check_namespace(allowed_namespaces(request), namespace)
    experiment_id, created = await request.app[STORAGE_KEY].create_experiment(
        namespace, v.path_name(body, "workspace", nested=False), v.path_name(body, "directory", nested=True,
                                                                             required=False),
        v.path_name(body, "prefix", nested=True), v.text(body, "readme"), v.name(body, "hostname", required=False))
    return respond(request, {"experiment_id": experiment_id, "created": created})


@routes.get(API + "/experiments")
async def list_experiments(request: web.Request) -> web.Response:
    allowed = allowed_namespaces(request)
    namespace = request.query.get("namespace") or None
    if namespace is not None:
        check_namespace(allowed, namespace)
        allowed = frozenset([namespace])
    status = request.query.get("status") or None
    if status is not None and status not in RUN_STATUSES:
        raise BadRequest(f"status must be one of {', '.join(RUN_STATUSES)}")
    found = await request.app[STORAGE_KEY].list_experiments(
        allowed, request.query.get("workspace") or None, status,
        int_query(request, "limit", 100, 1, 10_000), int_query(request, "offset", 0, 0, 2**62))
    return respond(request, {"experiments": [public(e) for e in found]})


@routes.get(EXPERIMENT)
async def get_experiment(request: web.Request) -> web.Response:
    experiment = await authorized_experiment(request)
    storage, experiment_id = request.app[STORAGE_KEY], experiment["id"]
    return respond(request, {**public(experiment),
                             "params": replay(await storage.parameter_ops(experiment_id)),
                             "metric_names": await storage.metric_names(experiment_id),
                             "last_metrics": await storage.last_metrics(experiment_id),
                             "runs": await storage.list_runs(experiment_id)})


@routes.patch(EXPERIMENT)
async def edit_experiment(request: web.Request) -> web.Response:
    """``{"tags"?, "add_tags"?, "remove_tags"?, "notes"?}``: tags replaced or changed, notes set (docs/query.md)."""
    experiment = await authorized_experiment(request)  # before the body: a foreign namespace costs no decoding
    body = validator(request).obj(await read_body(request))
    storage, experiment_id = request.app[STORAGE_KEY], experiment["id"]
    try:
        if any(key in body for key in ("tags", "add_tags", "remove_tags")):
            await storage.edit_tags(experiment_id, replace=body.get("tags"), add=body.get("add_tags") or (),
                                    remove=body.get("remove_tags") or ())
        if "notes" in body:
            await storage.set_notes(experiment_id, body["notes"])
    except (TypeError, ValueError) as exc:
        raise BadRequest(str(exc)) from None
    found = await storage.get_experiment(experiment_id)
    return respond(request, {"tags": found["tags"], "notes": found["notes"]})


@routes.post(EXPERIMENT + "/runs")
async def create_run(request: web.Request) -> web.Response:
    experiment = await authorized_experiment(request)  # before the body: a foreign namespace costs no decoding
    v = validator(request)
    body = v.obj(await read_body(request))
    run_id = await request.app[STORAGE_KEY].create_run(
        experiment["id"], v.name(body, "client_run_id"), v.name(body, "hostname", required=False),
        v.number(body, "started_at"))
    return respond(request, {"run_id": run_id})


@routes.patch(API + "/runs/{run_id}")
async def update_run(request: web.Request) -> web.Response:
    storage = request.app[STORAGE_KEY]
    run = await storage.get_run(request.match_info["run_id"])
    check_namespace(allowed_namespaces(request), run["namespace"])  # before the body is read
    v = validator(request)
    body = v.obj(await read_body(request))
    status, error, ended_at = v.status(body), v.text(body, "error"), v.number(body, "ended_at")
    await storage.update_run(run["id"], status, error, ended_at)
    return respond(request, {"ok": True})


@routes.post(EXPERIMENT + "/batches")
async def append_batch(request: web.Request) -> web.Response:
    experiment = await authorized_experiment(request)  # before the body: a foreign namespace costs no decoding
    config = request.app[CONFIG_KEY]
    raw = await read_raw(request)
    batch = await request.app[DECODER_KEY].decode(
        raw, request.content_type if request.body_exists else "",
        (config.max_name_length, config.max_events, config.max_body_items, config.max_json_bytes))
    rejected, ahead = batch.pop("rejected"), batch.pop("ahead")
    storage = request.app[STORAGE_KEY]
    result = await request.app[ORDER_KEY].apply(
        (experiment["id"], batch["stream_id"]), batch["start"], ahead, config.order_wait,
        lambda: storage.apply_batch(experiment["id"], **batch), client_gone(request))
    answer = {"acked": result.acked, "stored": result.stored}
    if result.duplicate:
        answer["duplicate"] = True
    elif rejected:  # records left out (the rest of the batch is stored and its bytes acknowledged): docs/protocol.md
        answer["rejected"] = rejected[:MAX_REJECTED_REPORTED]
        answer["rejected_count"] = len(rejected)
    return respond(request, answer)


@routes.get(EXPERIMENT + "/streams")
async def streams(request: web.Request) -> web.Response:
    experiment = await authorized_experiment(request)
    # "ordered": batches marked "ahead" wait for their predecessor here (docs/protocol.md), so a client may send
    # several of a stream at once; a client that does not see it sends one at a time.
    return respond(request, {"streams": await request.app[STORAGE_KEY].stream_offsets(experiment["id"]),
                             "ordered": True})


@routes.get(EXPERIMENT + "/parameters")
async def parameters(request: web.Request) -> web.Response:
    experiment = await authorized_experiment(request)
    return respond(request, replay(await request.app[STORAGE_KEY].parameter_ops(experiment["id"])))


@routes.get(EXPERIMENT + "/metrics")
async def metric_names(request: web.Request) -> web.Response:
    experiment = await authorized_experiment(request)
    return respond(request, {"names": await request.app[STORAGE_KEY].metric_names(experiment["id"])})


@routes.get(EXPERIMENT + "/metrics/{name:.+}")
async def metric(request: web.Request) -> web.Response:
    experiment = await authorized_experiment(request)
    name = request.match_info["name"]
    max_points = int_query(request, "max_points", None, 1, MAX_QUERY_POINTS)
    series = await request.app[STORAGE_KEY].metric_series(
        experiment["id"], name, int_query(request, "step_min", None, -(2**63), 2**63 - 1),
        int_query(request, "step_max", None, -(2**63), 2**63 - 1), max_points)
    if series is None:
        raise NotFound(f"no metric {name!r} in experiment {experiment['id']!r}")
    return respond(request, series_result(name, series, max_points, nonfinite_as_text=True))


@routes.get(EXPERIMENT + "/logs")
async def logs(request: web.Request) -> web.Response:
    experiment = await authorized_experiment(request)
    level = (request.query.get("level") or "").upper() or None
    found = await request.app[STORAGE_KEY].logs(experiment["id"], level, int_query(request, "limit", None, 1, 10**7))
    return respond(request, {"logs": found})


@routes.put(EXPERIMENT + "/files/{path:.+}")
async def upload_file(request: web.Request) -> web.Response:
    path = check_file_path(request.match_info["path"])
    experiment = await authorized_experiment(request)
    config = request.app[CONFIG_KEY]
    limit, message = config.max_file_bytes, ""
    if request.headers.get("Content-Encoding", "identity").lower() not in ("", "identity"):
        # aiohttp inflates as it reads: without a bound, 261 KB of gzip became 268 MB (and up to max_file_bytes).
        limit = min(limit, config.max_inflated_bytes)
        if request.content_length is not None:
            limit = min(limit, max(1 << 20, config.max_inflation_ratio * request.content_length))
        message = (f"the compressed body inflates past {limit} bytes (at most {config.max_inflation_ratio}x its "
                   f"compressed size and {config.max_inflated_bytes} bytes); upload it uncompressed")
    chunks = timed_chunks(request.content, config.file_body_timeout, config.body_idle_timeout, limit, message)
    try:
        sha256, size = await request.app[BLOBS_KEY].put(chunks, config.max_file_bytes)
    except web.RequestPayloadError as exc:
        raise BrokenBody(f"malformed request body: {exc}") from None
    await request.app[STORAGE_KEY].put_file(experiment["id"], path, size, sha256)
    return respond(request, {"path": path, "size": size, "sha256": sha256})


@routes.get(EXPERIMENT + "/files/{path:.+}")
async def download_file(request: web.Request) -> web.StreamResponse:
    path = check_file_path(request.match_info["path"])
    experiment = await authorized_experiment(request)
    record = await request.app[STORAGE_KEY].get_file(experiment["id"], path)
    return await request.app[BLOBS_KEY].response(
        request, record["sha256"], {"Content-Type": "application/octet-stream", "X-Content-SHA256": record["sha256"],
                                    "Content-Disposition": attachment(path), **SECURITY_HEADERS})


@routes.get(EXPERIMENT + "/files")
async def list_files(request: web.Request) -> web.Response:
    experiment = await authorized_experiment(request)
    return respond(request, {"files": await request.app[STORAGE_KEY].list_files(experiment["id"])})


def setup_routes(app: web.Application) -> None:
    app.add_routes(routes)
