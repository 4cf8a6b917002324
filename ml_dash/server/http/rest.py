"""The REST views under ``/api/v1`` and ``/health`` (docs/protocol.md for the contract; routes.py for their URLs)."""
from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from ml_dash.format.annotations import check_readme
from ml_dash.format.layout import CONSOLE_STREAMS, RUN_STATUSES, STREAMS, rank_series
from ml_dash.format.params import replay
from ml_dash.server.errors import BadRequest, BrokenBody, NotFound
from ml_dash.server.files.base import check_file_path
from ml_dash.server.http.batch_order import client_gone
from ml_dash.server.http.body import content_type, read_body, read_raw, timed_chunks
from ml_dash.server.http.inputs import authorized_experiment, int_query, validator
from ml_dash.server.http.keys import ALERTS_KEY, BLOBS_KEY, CONFIG_KEY, DECODER_KEY, ORDER_KEY, STORAGE_KEY
from ml_dash.server.http.responses import json_response, respond
from ml_dash.server.http.scope import request_scope
from ml_dash.server.http.security import SECURITY_HEADERS, attachment
from ml_dash.server.ingest import MAX_REJECTED_REPORTED
from ml_dash.server.media.store import store_media_batch
from ml_dash.server.series.downsample import series_result

# The protocol /health answers: a client compares it with the one it speaks (docs/protocol.md, "Compatibility").
PROTOCOL = 1
MAX_QUERY_POINTS = 1_000_000


def public(experiment: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in experiment.items() if k != "pk"}


async def health(request: web.Request) -> web.Response:
    return json_response({"ok": True, "protocol": PROTOCOL, "streams": list(STREAMS)})


async def create_experiment(request: web.Request) -> web.Response:
    v = validator(request)
    body = v.obj(await read_body(request))
    namespace = v.path_name(body, "namespace", nested=False)
    request_scope(request).check(namespace)
    try:
        readme = check_readme(v.text(body, "readme"))
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    fork = body.get("fork")
    if fork is not None and not (isinstance(fork, dict) and v.name(fork, "parent")
                                 and isinstance(fork.get("step"), int) and not isinstance(fork.get("step"), bool)):
        raise BadRequest("field 'fork' must be {parent: an experiment id or path, step: an int}")
    storage = request.app[STORAGE_KEY]
    experiment_id, created = await storage.create_experiment(
        namespace, v.path_name(body, "workspace", nested=False), v.path_name(body, "directory", nested=True,
                                                                             required=False),
        v.path_name(body, "prefix", nested=True), readme, v.name(body, "hostname", required=False))
    answer = {"experiment_id": experiment_id, "created": created}
    if fork is not None:
        # A fork whose parent is not here yet (synced later) is not an error: the client asks again later.
        try:
            await storage.set_fork(experiment_id, fork["parent"], fork["step"])
            answer["forked"] = True
        except NotFound as exc:
            answer["forked"], answer["fork_pending"] = False, str(exc)
    return respond(request, answer)


async def list_experiments(request: web.Request) -> web.Response:
    allowed = request_scope(request).listing(request.query.get("namespace") or None)
    status = request.query.get("status") or None
    if status is not None and status not in RUN_STATUSES:
        raise BadRequest(f"status must be one of {', '.join(RUN_STATUSES)}")
    found = await request.app[STORAGE_KEY].list_experiments(
        allowed, request.query.get("workspace") or None, status,
        int_query(request, "limit", 100, 1, 10_000), int_query(request, "offset", 0, 0, 2**62))
    return respond(request, {"experiments": [public(e) for e in found]})


async def get_experiment(request: web.Request) -> web.Response:
    experiment = await authorized_experiment(request)
    storage, experiment_id = request.app[STORAGE_KEY], experiment["id"]
    return respond(request, {**public(experiment),
                             "params": replay(await storage.parameter_ops(experiment_id)),
                             "metric_names": await storage.metric_names(experiment_id),
                             "last_metrics": await storage.last_metrics(experiment_id),
                             "runs": await storage.list_runs(experiment_id)})


async def edit_experiment(request: web.Request) -> web.Response:
    """``{"tags"?, "add_tags"?, "remove_tags"?, "notes"?}``: tags replaced or changed, notes set (docs/query.md)."""
    experiment = await authorized_experiment(request)  # before the body: a foreign namespace costs no decoding
    body = validator(request).obj(await read_body(request, _tag_lists))
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


def _tag_lists(body: Any) -> Any:
    """Each tag field, when given, is a JSON array (a dict would iterate as its keys): checked with the decode."""
    if isinstance(body, dict):
        for field in ("tags", "add_tags", "remove_tags"):
            if body.get(field) is not None and not isinstance(body[field], list):
                raise BadRequest(f"{field} must be a list of strings, got {type(body[field]).__name__}")
    return body


async def create_run(request: web.Request) -> web.Response:
    experiment = await authorized_experiment(request)  # before the body: a foreign namespace costs no decoding
    v = validator(request)
    body = v.obj(await read_body(request))
    branch_step = v.number(body, "branch_step")  # where the run supersedes earlier runs (docs/branches.md)
    storage = request.app[STORAGE_KEY]
    run_id = await storage.create_run(
        experiment["id"], v.name(body, "client_run_id"), v.name(body, "hostname", required=False),
        v.number(body, "started_at"), _job_fields(v, body))
    if branch_step is not None:
        await storage.set_run_branch(run_id, branch_step)
    return respond(request, {"run_id": run_id})


def _job_fields(v: Any, body: dict) -> dict | None:
    """A run's place in a distributed job and whether its client sends heartbeats (docs/distributed.md)."""
    job = {"job_id": v.name(body, "job_id", required=False), "heartbeat": body.get("heartbeat") is True}
    for key in ("rank", "world_size"):
        value = body.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 31):
            raise BadRequest(f"field {key!r} must be an int >= 0")
        job[key] = value
    return job if job["job_id"] is not None or job["heartbeat"] or job["rank"] is not None else None


async def heartbeat(request: web.Request) -> web.Response:
    """The uploader's sign of life for an open run: cheap (no body), answered with the run's status."""
    storage = request.app[STORAGE_KEY]
    run = await storage.get_run(request.match_info["run_id"])
    request_scope(request).check(run["namespace"])
    return respond(request, {"status": await storage.heartbeat(run["id"], time.time())})


async def console(request: web.Request) -> web.Response:
    """Captured stdout/stderr lines: ``?rank=&stream=&q=&after=&limit=`` (docs/distributed.md)."""
    experiment = await authorized_experiment(request)
    stream = request.query.get("stream") or None
    if stream is not None and stream not in CONSOLE_STREAMS:
        raise BadRequest(f"stream must be one of {', '.join(CONSOLE_STREAMS)}")
    search = request.query.get("q") or None
    if search is not None and (len(search) > 1000 or "\x00" in search):
        raise BadRequest("q must be at most 1000 characters, without NUL")
    lines = await request.app[STORAGE_KEY].console(
        experiment["id"], int_query(request, "rank", None, 0, 2**31 - 1), stream, search,
        int_query(request, "after", None, 0, 2**62), int_query(request, "limit", 1000, 1, 100_000))
    return respond(request, {"lines": lines})


async def update_run(request: web.Request) -> web.Response:
    storage = request.app[STORAGE_KEY]
    run = await storage.get_run(request.match_info["run_id"])
    request_scope(request).check(run["namespace"])  # before the body is read
    v = validator(request)
    body = v.obj(await read_body(request))
    status, error, ended_at = v.status(body), v.text(body, "error"), v.number(body, "ended_at")
    await storage.update_run(run["id"], status, error, ended_at)
    request.app[ALERTS_KEY].observe_run(run, status, error)
    return respond(request, {"ok": True})


async def append_batch(request: web.Request) -> web.Response:
    experiment = await authorized_experiment(request)  # before the body: a foreign namespace costs no decoding
    config = request.app[CONFIG_KEY]
    raw = await read_raw(request)
    batch = await request.app[DECODER_KEY].decode(
        raw, content_type(request),
        (config.max_name_length, config.max_events, config.max_body_items, config.max_json_bytes))
    rejected, ahead = batch.pop("rejected"), batch.pop("ahead")
    if batch["stream"] == "media":  # the items' bytes and thumbnails into the file store first (docs/media.md)
        await store_media_batch(request.app[BLOBS_KEY], batch)
    storage = request.app[STORAGE_KEY]
    result = await request.app[ORDER_KEY].apply(
        (experiment["id"], batch["stream_id"]), batch["start"], ahead, config.order_wait,
        lambda: storage.apply_batch(experiment["id"], **batch), client_gone(request))
    answer = {"acked": result.acked, "stored": result.stored}
    if result.stored:  # rules see each batch once: a replay stores nothing (docs/alerts.md)
        request.app[ALERTS_KEY].observe_batch(experiment, batch["run_id"], batch["stream"], batch["events"])
    if result.duplicate:
        answer["duplicate"] = True
    elif rejected:  # records left out (the rest of the batch is stored and its bytes acknowledged): docs/protocol.md
        answer["rejected"] = rejected[:MAX_REJECTED_REPORTED]
        answer["rejected_count"] = len(rejected)
    return respond(request, answer)


async def streams(request: web.Request) -> web.Response:
    experiment = await authorized_experiment(request)
    # "ordered": batches marked "ahead" wait for their predecessor here (docs/protocol.md), so a client may send
    # several of a stream at once; a client that does not see it sends one at a time.
    return respond(request, {"streams": await request.app[STORAGE_KEY].stream_offsets(experiment["id"]),
                             "ordered": True})


async def parameters(request: web.Request) -> web.Response:
    experiment = await authorized_experiment(request)
    return respond(request, replay(await request.app[STORAGE_KEY].parameter_ops(experiment["id"])))


async def metric_names(request: web.Request) -> web.Response:
    experiment = await authorized_experiment(request)
    return respond(request, {"names": await request.app[STORAGE_KEY].metric_names(experiment["id"])})


async def metric(request: web.Request) -> web.Response:
    experiment = await authorized_experiment(request)
    name = request.match_info["name"]
    max_points = int_query(request, "max_points", None, 1, MAX_QUERY_POINTS)
    rank = int_query(request, "rank", None, 0, 2**31 - 1)  # a rank of a distributed job; default rank 0's series
    series = await request.app[STORAGE_KEY].metric_series(
        experiment["id"], rank_series(name, rank), int_query(request, "step_min", None, -(2**63), 2**63 - 1),
        int_query(request, "step_max", None, -(2**63), 2**63 - 1), max_points,
        superseded=int_query(request, "superseded", 0, 0, 1) == 1)
    if series is None:
        raise NotFound(f"no metric {name!r} in experiment {experiment['id']!r}")
    return respond(request, series_result(name, series, max_points, nonfinite_as_text=True))


async def logs(request: web.Request) -> web.Response:
    experiment = await authorized_experiment(request)
    level = (request.query.get("level") or "").upper() or None
    found = await request.app[STORAGE_KEY].logs(experiment["id"], level, int_query(request, "limit", None, 1, 10**7))
    return respond(request, {"logs": found})


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


async def download_file(request: web.Request) -> web.StreamResponse:
    path = check_file_path(request.match_info["path"])
    experiment = await authorized_experiment(request)
    record = await request.app[STORAGE_KEY].get_file(experiment["id"], path)
    return await request.app[BLOBS_KEY].response(
        request, record["sha256"], {"Content-Type": "application/octet-stream", "X-Content-SHA256": record["sha256"],
                                    "Content-Disposition": attachment(path), **SECURITY_HEADERS})


async def list_files(request: web.Request) -> web.Response:
    experiment = await authorized_experiment(request)
    return respond(request, {"files": await request.app[STORAGE_KEY].list_files(experiment["id"])})

