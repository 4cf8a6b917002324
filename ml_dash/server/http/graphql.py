"""GraphQL read API at ``/graphql`` (graphql-core).

Objects are dicts; graphql-core's default resolver reads a dict key and, when the value is callable, calls it with
``(info, **arguments)``. So each experiment dict carries small async closures for its expensive fields, which run only
when a query selects them. Float cannot carry NaN/Infinity: such metric values come back as null.
"""
from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from graphql import GraphQLError, build_schema, graphql

from ml_dash.format.layout import RUN_STATUSES
from ml_dash.format.params import replay
from ml_dash.server.errors import BadRequest, Forbidden, NotFound, ServerError
from ml_dash.server.http.auth import allowed_namespaces, check_namespace
from ml_dash.server.http.keys import STORAGE_KEY
from ml_dash.server.http.responses import json_response
from ml_dash.server.series.downsample import series_result
from ml_dash.server.storage.base import Storage

SDL = """
scalar JSON

type Run { id: ID! status: String! hostname: String startedAt: Float endedAt: Float error: String }
type Metric { name: String! count: Int! steps: [Float] values: [Float] min: Float max: Float }
type LogEntry { timestamp: Float level: String message: String context: JSON }
type File { path: String! size: Float! sha256: String! }

type Experiment {
  id: ID! namespace: String! workspace: String! directory: String! prefix: String! readme: String
  status: String hostname: String createdAt: Float startedAt: Float completedAt: Float
  params: JSON metricNames: [String!]! lastMetrics: JSON runs: [Run!]!
  metric(name: String!, maxPoints: Int, stepMin: Float, stepMax: Float): Metric
  logs(level: String, limit: Int): [LogEntry!]!
  files: [File!]!
}

type Query {
  experiments(namespace: String, workspace: String, status: String, limit: Int = 100, offset: Int = 0): [Experiment!]!
  experiment(id: ID!): Experiment
  namespaces: [String!]!
  workspaces(namespace: String!): [String!]!
}
"""
schema = build_schema(SDL)
MAX_LIMIT = 10_000


def _camel_run(run: dict[str, Any]) -> dict[str, Any]:
    return {"id": run["id"], "status": run["status"], "hostname": run["hostname"], "startedAt": run["started_at"],
            "endedAt": run["ended_at"], "error": run["error"]}


def _experiment_node(storage: Storage, e: dict[str, Any]) -> dict[str, Any]:
    experiment_id = e["id"]

    async def params(info):
        return replay(await storage.parameter_ops(experiment_id))

    async def last_metrics(info):
        return _nonfinite_as_text(await storage.last_metrics(experiment_id))

    async def runs(info):
        return [_camel_run(r) for r in await storage.list_runs(experiment_id)]

    async def metric(info, name, maxPoints=None, stepMin=None, stepMax=None):
        if maxPoints is not None and maxPoints < 1:
            raise BadRequest("maxPoints must be at least 1")
        series = await storage.metric_series(experiment_id, name, stepMin, stepMax, maxPoints)
        return None if series is None else series_result(name, series, maxPoints, nonfinite_as_text=False)

    async def logs(info, level=None, limit=None):
        if limit is not None and limit < 1:
            raise BadRequest("limit must be at least 1")
        return await storage.logs(experiment_id, level.upper() if level else None, limit)

    return {
        "id": experiment_id, "namespace": e["namespace"], "workspace": e["workspace"], "directory": e["directory"],
        "prefix": e["prefix"], "readme": e["readme"], "status": e["status"], "hostname": e["hostname"],
        "createdAt": e["created_at"], "startedAt": e["started_at"], "completedAt": e["completed_at"],
        "params": params, "metricNames": lambda info: storage.metric_names(experiment_id),
        "lastMetrics": last_metrics, "runs": runs, "metric": metric, "logs": logs,
        "files": lambda info: storage.list_files(experiment_id),
    }


def _nonfinite_as_text(values: dict[str, Any]) -> dict[str, Any]:
    """JSON scalars go through orjson, which would turn NaN into null; keep the JSONL spellings instead."""
    out = {}
    for name, v in values.items():
        if isinstance(v, float) and v - v != 0:
            v = "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")
        out[name] = v
    return out


def root_value(storage: Storage, allowed: frozenset[str] | None) -> dict[str, Any]:
    async def experiments(info, namespace=None, workspace=None, status=None, limit=100, offset=0):
        namespaces = allowed
        if namespace is not None:
            check_namespace(allowed, namespace)
            namespaces = frozenset([namespace])
        if status is not None and status not in RUN_STATUSES:
            raise BadRequest(f"status must be one of {', '.join(RUN_STATUSES)}")
        if not 0 < limit <= MAX_LIMIT or offset < 0:
            raise BadRequest(f"limit must be 1..{MAX_LIMIT} and offset non-negative")
        found = await storage.list_experiments(namespaces, workspace, status, limit, offset)
        return [_experiment_node(storage, e) for e in found]

    async def experiment(info, id):
        try:
            found = await storage.get_experiment(id)
        except NotFound:
            return None
        check_namespace(allowed, found["namespace"])
        return _experiment_node(storage, found)

    async def namespaces(info):
        return [ns for ns in await storage.list_namespaces() if allowed is None or ns in allowed]

    async def workspaces(info, namespace):
        check_namespace(allowed, namespace)
        return await storage.list_workspaces(namespace)

    return {"experiments": experiments, "experiment": experiment, "namespaces": namespaces, "workspaces": workspaces}


async def graphql_get(request: web.Request) -> web.Response:
    return web.Response(text="ml-dash GraphQL endpoint: POST {\"query\": ..., \"variables\": ...} as JSON.\n")


async def graphql_post(request: web.Request) -> web.Response:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON body: {exc}") from None
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        raise BadRequest("body must be a JSON object with a 'query' string")
    variables = body.get("variables")
    if variables is not None and not isinstance(variables, dict):
        raise BadRequest("'variables' must be an object")
    result = await graphql(schema, body["query"], root_value=root_value(request.app[STORAGE_KEY],
                                                                       allowed_namespaces(request)),
                           variable_values=variables, operation_name=body.get("operationName"))
    answer: dict[str, Any] = {"data": result.data}
    status = 200
    if result.errors:
        answer["errors"] = [e.formatted for e in result.errors]
        originals = [e.original_error for e in result.errors]
        if any(isinstance(o, Forbidden) for o in originals):
            status = 403  # the protocol promises 403 for namespaces outside a token's reach, GraphQL included
        elif any(o is not None and not isinstance(o, (ServerError, GraphQLError)) for o in originals):
            status = 500
        elif result.data is None:
            status = 400  # the query itself did not validate
    return json_response(answer, status)


def setup_graphql(app: web.Application) -> None:
    app.router.add_get("/graphql", graphql_get)
    app.router.add_post("/graphql", graphql_post)
