"""GraphQL read API at ``/graphql`` (graphql-core).

Objects are dicts; graphql-core's default resolver reads a dict key and, when the value is callable, calls it with
``(info, **arguments)``. So each experiment dict carries small async closures for its expensive fields, which run only
when a query selects them. Float cannot carry NaN/Infinity: such metric values come back as null.

Limits (graphql_cost, docs/server.md): a query's cost is checked from its text before it runs. It then runs in a
worker thread with an event loop of its own, and so does the JSON encoding of its answer: the server's loop only
carries the storage calls (``_OnLoop``), so /health and ingest stay responsive while a big answer is built.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, AsyncIterator

import orjson
from aiohttp import web
from graphql import (
    GraphQLError,
    GraphQLSyntaxError,
    build_schema,
    execute,
    parse,
    validate,
)

from ml_dash.format.filter import parse_filter, parse_order_by
from ml_dash.format.layout import RUN_STATUSES, SYSTEM_PREFIX
from ml_dash.format.values import nonfinite_text
from ml_dash.server.errors import BadRequest, Forbidden, NotFound, QueryTimeout, ServerError
from ml_dash.server.http.graphql_cost import (
    DEFAULT_LOGS_LIMIT,
    DEFAULT_MAX_POINTS,
    DEFAULT_SEARCH_LIMIT,
    DEFAULT_TREE_LIMIT,
    MAX_SEARCH_LIMIT,
    MAX_TREE_LIMIT,
    MAX_EXPERIMENTS_LIMIT,
    MAX_LOGS_LIMIT,
    MAX_POINTS,
    MAX_COST,
    FILTER_TERM_COST,
    MAX_TOKENS,
    README_HTML_CHARS_PER_COST,
    QueryTooExpensive,
    TextBudget,
    check_cost,
    comparisons,
    check_source,
)
from ml_dash.server.http.batch_order import client_gone
from ml_dash.server.alerts.rules import WebhookAllowList
from ml_dash.server.http.graphql_alerts import ALERTS_SDL, alert_resolvers
from ml_dash.server.http.graphql_series import series_batch_resolver
from ml_dash.server.http.keys import ALERTS_KEY, CONFIG_KEY, STORAGE_KEY
from ml_dash.server.http.readme_html import readme_html
from ml_dash.server.http.scope import Scope, request_scope
from ml_dash.server.series.downsample import series_result
from ml_dash.server.storage.base import Storage

SDL = """
scalar JSON

type Run { id: ID! status: String! hostname: String startedAt: Float endedAt: Float error: String
  branchStep: Float supersededFrom: Float jobId: String rank: Int worldSize: Int }
type Metric { name: String! count: Int! steps: [Float] values: [Float] min: Float max: Float }
# seriesBatch's answer per experiment: the point arrays are JSON (plain arrays, null for NaN/Infinity), which the
# answer's encoder writes in one pass instead of graphql-core completing each of ~10^5-10^6 list items; with
# encoding: "base64" each is a string "<f8|f4|i4>:<base64 of the little-endian array>", NaN for null
# (http/series_encoding.py).
type SeriesEnvelope { experimentId: ID! name: String! count: Int! min: Float max: Float
  steps: JSON values: JSON times: JSON }
# A metric at a glance: its last value (JSON: NaN/Infinity as their JSONL spellings, bools as bools), its finite
# extremes and its number of points, from the series' block summaries (no point is read).
type MetricSummary { name: String! last: JSON min: Float max: Float count: Int! }
type LogEntry { timestamp: Float level: String message: String context: JSON }
type File { path: String! size: Float! sha256: String! }

type Experiment {
  id: ID! namespace: String! workspace: String! directory: String! prefix: String! readme: String readmeHtml: String
  status: String hostname: String createdAt: Float startedAt: Float completedAt: Float
  params: JSON metricNames: [String!]! lastMetrics: JSON runs: [Run!]!
  systemMetricNames: [String!]! environment: JSON metricSummary: [MetricSummary!]!
  metric(name: String!, maxPoints: Int, stepMin: Float, stepMax: Float, superseded: Boolean = false): Metric
  lineage: JSON
  logs(level: String, limit: Int): [LogEntry!]!
  files: [File!]!
  tags: [String!]! notes: String deletedAt: Float
}

type ExperimentPage { total: Int! items: [Experiment!]! }
# One folder of the navigator's tree: its name and how many experiments its subtree holds.
type TreeNode { name: String! count: Int! }

type Query {
  experiments(namespace: String, workspace: String, status: String, limit: Int = 100, offset: Int = 0): [Experiment!]!
  experiment(id: ID!): Experiment
  namespaces: [String!]!
  workspaces(namespace: String!): [String!]!
  seriesBatch(experimentIds: [ID!]!, name: String!, maxPoints: Int, x: String, stepMin: Float,
              stepMax: Float, encoding: String = "json"): [SeriesEnvelope]!
  # The level below: namespaces (none given), a namespace's workspaces, or the folders under a directory ("": the
  # workspace's top); counts from the database, soft-deleted experiments left out.
  tree(namespace: String, workspace: String, directory: String, limit: Int = 1000): [TreeNode!]!
  # Experiments whose prefix, directory, workspace or readme contain the text (ASCII case ignored).
  search(text: String!, namespace: String, limit: Int = 50): [Experiment!]!
  experimentPage(namespace: String, workspace: String, directory: String, filter: String, orderBy: String,
                 limit: Int = 100, offset: Int = 0, includeDeleted: Boolean = false): ExperimentPage!
}

type Mutation {
  setTags(id: ID!, tags: [String!]!): Experiment
  addTags(id: ID!, tags: [String!]!): Experiment
  removeTags(id: ID!, tags: [String!]!): Experiment
  setNotes(id: ID!, notes: String): Experiment
  deleteExperiment(id: ID!): Experiment
  restoreExperiment(id: ID!): Experiment
}
"""
schema = build_schema(SDL + ALERTS_SDL)
MAX_LIMIT = MAX_EXPERIMENTS_LIMIT
MAX_SEARCH_CHARS = 200  # the navigator's search box: a name, not a document
GRAPHQL_THREADS = 4  # queries executing at once; more wait for a free thread (the server's loop never does)
READS_PER_QUERY = 2  # storage calls one query has in flight at once (the rest wait in the query's own thread)
POOL_KEY = web.AppKey("graphql_pool", ThreadPoolExecutor)
DISCONNECT_POLL_S = 0.25  # how often a running query checks that its client is still connected


class _OnLoop:
    """The storage as seen from a GraphQL worker thread: each call runs on the server's loop, where the storage
    lives (its connections, its reader threads), and the worker's own loop awaits the answer. A query has at most
    ``READS_PER_QUERY`` calls in flight, so 100 aliases never queue 100 reads ahead of an ingest request's own read
    (checking the experiment it writes to) in the storage's reader pool."""

    def __init__(self, storage: Storage, loop: asyncio.AbstractEventLoop) -> None:
        self._storage, self._loop = storage, loop
        self._gate = asyncio.Semaphore(READS_PER_QUERY)  # used (hence bound) on the worker's loop only
        self._in_flight: set[concurrent.futures.Future] = set()
        self._lock = threading.Lock()
        self.cancelled = False

    def cancel(self) -> None:
        """The client went away (called on the server's loop): its reads are cancelled in the database, and the
        query's later calls fail at once, so the worker thread is free again soon."""
        with self._lock:
            self.cancelled = True
            in_flight = list(self._in_flight)
        for future in in_flight:
            future.cancel()  # cancels the storage call's task on the server's loop

    def __getattr__(self, name: str):
        method = getattr(self._storage, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            async with self._gate:
                with self._lock:
                    if self.cancelled:
                        raise asyncio.CancelledError
                    future = asyncio.run_coroutine_threadsafe(method(*args, **kwargs), self._loop)
                    self._in_flight.add(future)
                try:
                    return await asyncio.wrap_future(future)
                finally:
                    with self._lock:
                        self._in_flight.discard(future)

        return call


def _camel_run(run: dict[str, Any]) -> dict[str, Any]:
    return {"id": run["id"], "status": run["status"], "hostname": run["hostname"], "startedAt": run["started_at"],
            "endedAt": run["ended_at"], "error": run["error"], "branchStep": run.get("branch_step"),
            "supersededFrom": run.get("superseded_from"), "jobId": run.get("job_id"), "rank": run.get("rank"),
            "worldSize": run.get("world_size")}


class _PageLoader:
    """One storage call for a page's last metrics, made when the first item's ``lastMetrics`` is resolved."""

    def __init__(self, storage: Storage, experiment_ids: list[str]) -> None:
        self.storage, self.experiment_ids = storage, experiment_ids
        self._answer: asyncio.Future | None = None

    async def last_metrics(self, experiment_id: str) -> dict[str, Any]:
        if self._answer is None:
            self._answer = asyncio.ensure_future(self.storage.last_metrics_many(self.experiment_ids))
        return (await self._answer).get(experiment_id, {})


def _node(storage: Storage, e: dict[str, Any], page: _PageLoader | None = None,
          budget: TextBudget | None = None) -> dict[str, Any]:
    experiment_id = e["id"]
    budget = budget or TextBudget(MAX_COST)

    def text(field: str, value: str | None) -> str | None:
        budget.charge(field, len(value or ""))
        return value

    def html(info):
        budget.charge("readmeHtml", len(e["readme"] or ""), README_HTML_CHARS_PER_COST)  # before rendering it
        return readme_html(e["readme"])

    async def environment(info):
        found = await storage.environment(experiment_id)
        budget.charge("environment", 0 if found is None else len(orjson.dumps(found)))
        return found

    async def last_metrics(info):
        last = await (page.last_metrics(experiment_id) if page else storage.last_metrics(experiment_id))
        return _nonfinite_as_text({k: v for k, v in last.items() if not k.startswith(SYSTEM_PREFIX)})

    async def metric_names(info, system=False):  # the sampler's series (SYSTEM_PREFIX) apart from the user's
        return [n for n in await storage.metric_names(experiment_id) if n.startswith(SYSTEM_PREFIX) is system]

    async def metric_summary(info):
        return [{**m, "last": _nonfinite_as_text({"v": m["last"]})["v"]}
                for m in await storage.metric_summary(experiment_id) if not m["name"].startswith(SYSTEM_PREFIX)]

    async def runs(info):
        return [_camel_run(r) for r in await storage.list_runs(experiment_id)]

    async def metric(info, name, maxPoints=DEFAULT_MAX_POINTS, stepMin=None, stepMax=None, superseded=False):
        maxPoints = DEFAULT_MAX_POINTS if maxPoints is None else maxPoints
        if not 1 <= maxPoints <= MAX_POINTS:
            raise BadRequest(f"maxPoints must be at least 1 and at most {MAX_POINTS} (default {DEFAULT_MAX_POINTS})")
        # superseded: the points later runs replaced (docs/branches.md), drawn faintly by the dashboard
        series = await storage.metric_series(experiment_id, name, stepMin, stepMax, maxPoints,
                                             superseded=bool(superseded))
        return None if series is None else series_result(name, series, maxPoints, nonfinite_as_text=False)

    async def logs(info, level=None, limit=DEFAULT_LOGS_LIMIT):
        limit = DEFAULT_LOGS_LIMIT if limit is None else limit
        if not 1 <= limit <= MAX_LOGS_LIMIT:
            raise BadRequest(f"logs limit must be at least 1 and at most {MAX_LOGS_LIMIT} "
                             f"(default {DEFAULT_LOGS_LIMIT})")
        return await storage.logs(experiment_id, level.upper() if level else None, limit)

    return {
        "id": experiment_id, "namespace": e["namespace"], "workspace": e["workspace"], "directory": e["directory"],
        "prefix": e["prefix"], "readme": lambda info: text("readme", e["readme"]), "readmeHtml": html,
        "status": e["status"], "hostname": e["hostname"],
        "createdAt": e["created_at"], "startedAt": e["started_at"], "completedAt": e["completed_at"],
        "params": e["params"], "tags": e["tags"], "notes": lambda info: text("notes", e["notes"]),
        "deletedAt": e["deleted_at"],
        "metricNames": metric_names, "systemMetricNames": lambda info: metric_names(info, True),
        "metricSummary": metric_summary,
        "environment": environment,
        "lastMetrics": last_metrics, "runs": runs, "metric": metric, "logs": logs,
        "lineage": lambda info: storage.lineage(experiment_id),
        "files": lambda info: storage.list_files(experiment_id),
    }


def _nonfinite_as_text(values: dict[str, Any]) -> dict[str, Any]:
    """JSON scalars go through orjson, which would turn NaN into null; keep the JSONL spellings instead."""
    out = {}
    for name, v in values.items():
        if isinstance(v, float) and v - v != 0:
            v = nonfinite_text(v)
        out[name] = v
    return out


def root_value(storage: Storage, scope: Scope, budget: TextBudget | None = None,
               alerts: tuple[Any, WebhookAllowList] | None = None) -> dict[str, Any]:
    budget = budget or TextBudget(MAX_COST)

    def _experiment_node(storage: Storage, e: dict[str, Any], page: _PageLoader | None = None) -> dict[str, Any]:
        return _node(storage, e, page, budget)  # every experiment of the query charges its one budget

    async def experiments(info, namespace=None, workspace=None, status=None, limit=100, offset=0):
        limit, offset = (100 if limit is None else limit), (0 if offset is None else offset)  # explicit nulls
        namespaces = scope.listing(namespace)
        if status is not None and status not in RUN_STATUSES:
            raise BadRequest(f"status must be one of {', '.join(RUN_STATUSES)}")
        if not 0 < limit <= MAX_LIMIT or offset < 0:
            raise BadRequest(f"limit must be 1..{MAX_LIMIT} and offset non-negative")
        found = await storage.list_experiments(namespaces, workspace, status, limit, offset)
        page = _PageLoader(storage, [e["id"] for e in found])
        return [_experiment_node(storage, e, page) for e in found]

    async def experiment(info, id):
        try:
            return _experiment_node(storage, await scope.experiment(storage, id))
        except NotFound:
            return None

    async def namespaces(info):
        return [ns for ns in await storage.list_namespaces() if scope.allows(ns)]

    async def workspaces(info, namespace):
        scope.check(namespace)
        return await storage.list_workspaces(namespace)

    async def tree(info, namespace=None, workspace=None, directory=None, limit=DEFAULT_TREE_LIMIT):
        limit = DEFAULT_TREE_LIMIT if limit is None else limit
        if not 0 < limit <= MAX_TREE_LIMIT:
            raise BadRequest(f"tree limit must be 1..{MAX_TREE_LIMIT}")
        if workspace is not None and namespace is None:
            raise BadRequest("tree(workspace) needs its namespace")
        if directory is not None and workspace is None:
            raise BadRequest("tree(directory) needs its namespace and workspace")
        namespaces = scope.listing(namespace)
        found = await storage.experiment_tree(namespaces, namespace, workspace, (directory or "").strip("/"), limit)
        return [{"name": name, "count": count} for name, count in found]

    async def search(info, text, namespace=None, limit=DEFAULT_SEARCH_LIMIT):
        limit = DEFAULT_SEARCH_LIMIT if limit is None else limit
        if not 0 < limit <= MAX_SEARCH_LIMIT:
            raise BadRequest(f"search limit must be 1..{MAX_SEARCH_LIMIT}")
        if not text.strip() or len(text) > MAX_SEARCH_CHARS:
            raise BadRequest(f"search text must be 1..{MAX_SEARCH_CHARS} characters, not blank")
        found = await storage.search_experiments(scope.listing(namespace), text.strip(), limit)
        page = _PageLoader(storage, [e["id"] for e in found])
        return [_experiment_node(storage, e, page) for e in found]

    async def experiment_page(info, namespace=None, workspace=None, directory=None, filter=None, orderBy=None,
                              limit=100, offset=0, includeDeleted=False):
        limit, offset = (100 if limit is None else limit), (0 if offset is None else offset)
        namespaces = scope.listing(namespace)
        if not 0 < limit <= MAX_LIMIT or offset < 0:
            raise BadRequest(f"limit must be 1..{MAX_LIMIT} and offset non-negative")
        try:  # here, in the worker thread: a bad filter never reaches the storage (or the server's loop)
            node, keys = parse_filter(filter), parse_order_by(orderBy)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        terms = comparisons(node) + sum(key.field.kind in ("params", "metrics") for key in keys)
        if terms:  # each is an expression evaluated per experiment in scope: priced before the query runs
            scope_size = await storage.count_experiments(namespaces, workspace=workspace, directory=directory,
                                                         include_deleted=bool(includeDeleted))
            budget.spend("experimentPage(filter, orderBy)", terms * scope_size * FILTER_TERM_COST,
                         f"{terms} comparisons and params/metrics order keys × {scope_size:,} experiments in scope × "
                         f"{FILTER_TERM_COST}")
        total, found = await storage.experiment_page(namespaces, workspace=workspace, directory=directory,
                                                     filter=node, order_by=keys, limit=limit, offset=offset,
                                                     include_deleted=bool(includeDeleted))
        page = _PageLoader(storage, [e["id"] for e in found])
        return {"total": total, "items": [_experiment_node(storage, e, page) for e in found]}

    async def edited(id, edit):
        """Check the token may touch the experiment's namespace, apply ``edit(storage)``, answer the experiment."""
        try:
            await scope.experiment(storage, id)
        except NotFound:
            return None
        try:
            await edit()
        except (TypeError, ValueError) as exc:
            raise BadRequest(str(exc)) from None
        return _experiment_node(storage, await storage.get_experiment(id))

    return {"experiments": experiments, "experiment": experiment, "namespaces": namespaces, "workspaces": workspaces,
            "seriesBatch": series_batch_resolver(storage, scope), "experimentPage": experiment_page,
            "tree": tree, "search": search,
            "setTags": lambda info, id, tags: edited(id, lambda: storage.edit_tags(id, replace=tags)),
            "addTags": lambda info, id, tags: edited(id, lambda: storage.edit_tags(id, add=tags)),
            "removeTags": lambda info, id, tags: edited(id, lambda: storage.edit_tags(id, remove=tags)),
            "setNotes": lambda info, id, notes=None: edited(id, lambda: storage.set_notes(id, notes)),
            "deleteExperiment": lambda info, id: edited(id, lambda: storage.set_deleted(id, True)),
            "restoreExperiment": lambda info, id: edited(id, lambda: storage.set_deleted(id, False)),
            **(alert_resolvers(storage, scope, *alerts) if alerts else {})}


async def graphql_get(request: web.Request) -> web.Response:
    return web.Response(text="ml-dash GraphQL endpoint: POST {\"query\": ..., \"variables\": ...} as JSON.\n")


async def graphql_post(request: web.Request) -> web.Response:
    """``application/json`` ``{"query", "variables", "operationName"}``, or the query itself as
    ``application/graphql``; other content types never get here (security.py answers 415)."""
    raw = await request.read()
    try:
        body = {"query": raw.decode()} if request.content_type == "application/graphql" else orjson.loads(raw)
    except (orjson.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"malformed body: {exc}") from None
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        raise BadRequest("body must be a JSON object with a 'query' string")
    variables = body.get("variables")
    if variables is not None and not isinstance(variables, dict):
        raise BadRequest("'variables' must be an object")
    operation_name = body.get("operationName")
    if operation_name is not None and not isinstance(operation_name, str):
        raise BadRequest("'operationName' must be a string")
    loop = asyncio.get_running_loop()
    storage = _OnLoop(request.app[STORAGE_KEY], loop)
    alerts = (_OnLoop(request.app[ALERTS_KEY], loop), WebhookAllowList(request.app[CONFIG_KEY].alert_webhook_allow))
    work = asyncio.get_running_loop().run_in_executor(
        request.app[POOL_KEY], _in_worker, body["query"], variables, operation_name, storage, request_scope(request),
        alerts)
    gone = client_gone(request)
    try:
        while not (await asyncio.wait({work}, timeout=DISCONNECT_POLL_S))[0]:
            if gone():  # aiohttp (by default) does not cancel a handler whose client left: the query would run on
                raise asyncio.CancelledError
    except asyncio.CancelledError:  # the client left (seen here, or by aiohttp with handler_cancellation)
        storage.cancel()
        work.add_done_callback(lambda done: done.cancelled() or done.exception())  # nobody reads the answer
        raise
    answer, status = await work
    return web.Response(body=answer, status=status, content_type="application/json")


def _in_worker(query: str, variables: dict | None, operation_name: str | None, storage: Any,
               scope: Scope, alerts: tuple[Any, WebhookAllowList] | None = None) -> tuple[bytes, int]:
    """Parse, check, execute and encode one query on an event loop of this worker thread's own."""
    answer, status = asyncio.run(_run(query, variables, operation_name, storage, scope, alerts))
    return orjson.dumps(answer), status


async def _run(query: str, variables: dict | None, operation_name: str | None, storage: Any,
               scope: Scope, alerts: tuple[Any, WebhookAllowList] | None = None) -> tuple[dict[str, Any], int]:
    try:
        check_source(query)
        document = parse(query, max_tokens=MAX_TOKENS)
        cost = check_cost(schema, document, operation_name, variables)  # before validation, slow on bombs too
    except QueryTooExpensive as exc:
        return {"data": None, "errors": [{"message": str(exc)}]}, 400
    except GraphQLSyntaxError as exc:
        message = exc.message
        if "token" in message.lower():
            message += f" (at most {MAX_TOKENS:,} tokens are accepted)"
        return {"data": None, "errors": [{**exc.formatted, "message": message}]}, 400
    errors = validate(schema, document)
    if errors:
        return {"data": None, "errors": [e.formatted for e in errors]}, 400
    result = execute(schema, document, root_value=root_value(storage, scope, TextBudget(MAX_COST - cost.cost), alerts), variable_values=variables,
                     operation_name=operation_name)
    if inspect.isawaitable(result):
        result = await result
    answer: dict[str, Any] = {"data": result.data}
    status = 200
    if result.errors:
        answer["errors"] = [e.formatted for e in result.errors]
        originals = [e.original_error for e in result.errors]
        if any(isinstance(o, Forbidden) for o in originals):
            status = 403
        elif any(isinstance(o, QueryTooExpensive) for o in originals):
            status = 400  # over the budget once its text or its filter was counted
        elif any(isinstance(o, QueryTimeout) for o in originals):
            status = 503  # the protocol promises 403 for namespaces outside a token's reach, GraphQL included
        elif any(o is not None and not isinstance(o, (ServerError, GraphQLError)) for o in originals):
            status = 500
        elif result.data is None:
            status = 400  # the query itself did not validate
    return answer, status


async def graphql_pool(app: web.Application) -> AsyncIterator[None]:
    pool = app[POOL_KEY] = ThreadPoolExecutor(GRAPHQL_THREADS, thread_name_prefix="ml-dash-graphql")
    yield
    pool.shutdown(wait=False, cancel_futures=True)

