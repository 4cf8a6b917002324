"""Every URL the server answers, in one table: method, path, view. docs/protocol.md documents each of them
(tests/server/test_routes_documented.py holds the two together). A GET also answers HEAD."""
from __future__ import annotations

from aiohttp import web

from ml_dash.server.http import dashboard, environment, graphql, media, rest

API = "/api/v1"
EXPERIMENT = API + "/experiments/{experiment_id}"

ROUTES = [
    web.get("/health", rest.health),
    web.post(API + "/experiments", rest.create_experiment),
    web.get(API + "/experiments", rest.list_experiments),
    web.get(EXPERIMENT, rest.get_experiment),
    web.patch(EXPERIMENT, rest.edit_experiment),
    web.post(EXPERIMENT + "/runs", rest.create_run),
    web.patch(API + "/runs/{run_id}", rest.update_run),
    web.post(API + "/runs/{run_id}/heartbeat", rest.heartbeat),
    web.post(EXPERIMENT + "/batches", rest.append_batch),
    web.get(EXPERIMENT + "/streams", rest.streams),
    web.get(EXPERIMENT + "/parameters", rest.parameters),
    web.get(EXPERIMENT + "/metrics", rest.metric_names),
    web.get(EXPERIMENT + "/metrics/{name:.+}", rest.metric),
    web.get(EXPERIMENT + "/logs", rest.logs),
    web.get(EXPERIMENT + "/console", rest.console),
    web.put(EXPERIMENT + "/files/{path:.+}", rest.upload_file),
    web.get(EXPERIMENT + "/files/{path:.+}", rest.download_file),
    web.get(EXPERIMENT + "/files", rest.list_files),
    web.put(EXPERIMENT + "/environment", environment.put_environment),
    web.get(EXPERIMENT + "/environment", environment.get_environment),
    web.get(EXPERIMENT + "/step-times", dashboard.metric_step_times),
    web.get(EXPERIMENT + "/media", media.media_keys),
    web.get(EXPERIMENT + "/media/{key:.+}", media.media_items),
    web.get(EXPERIMENT + "/media-steps/{key:.+}", media.media_steps),
    web.get(EXPERIMENT + "/media-items/{pk}", media.media_item),
    web.get(EXPERIMENT + "/histograms/{key:.+}", media.histograms),
    web.get(EXPERIMENT + "/histogram-heatmap/{key:.+}", media.histogram_heatmap),
    web.get("/graphql", graphql.graphql_get),
    web.post("/graphql", graphql.graphql_post),
    web.get("/", dashboard.index),
    web.get(dashboard.PLOTLY_URL, dashboard.plotly_js),  # before the catch-all below, which would take its path
    web.get("/static/{path:.+}", dashboard.static_file),
]
