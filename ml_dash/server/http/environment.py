"""The run environment of an experiment (docs/system-metrics.md): ``PUT`` replaces it, ``GET`` reads it.

The client sends the meta file's ``"environment"`` once per run; replacing (not merging) makes a retry harmless.
"""
from __future__ import annotations

import orjson
from aiohttp import web

from ml_dash.format.limits import MAX_ENVIRONMENT_BYTES

from ml_dash.server.errors import BadRequest
from ml_dash.server.http.body import read_body
from ml_dash.server.http.inputs import authorized_experiment, validator
from ml_dash.server.http.keys import STORAGE_KEY
from ml_dash.server.http.responses import respond
from ml_dash.server.ingest import storable_json


async def put_environment(request: web.Request) -> web.Response:
    experiment = await authorized_experiment(request)  # before the body: a foreign namespace costs no decoding
    environment = await read_body(request, lambda body: _checked(validator(request).obj(body)))
    await request.app[STORAGE_KEY].set_environment(experiment["id"], environment)
    return respond(request, {"ok": True})


def _checked(body: dict) -> dict:
    """The environment as stored, within ``MAX_ENVIRONMENT_BYTES`` as JSON (run with the decode: off the loop for a
    large body)."""
    try:
        environment = storable_json(body)  # NUL and non-finite floats made storable; nesting within MAX_NESTING
    except BadRequest as exc:
        raise BadRequest(f"environment: {exc.message}") from None
    size = len(orjson.dumps(environment))
    if size > MAX_ENVIRONMENT_BYTES:
        raise BadRequest(f"environment is {size:,} bytes as JSON; at most {MAX_ENVIRONMENT_BYTES:,} are accepted")
    return environment


async def get_environment(request: web.Request) -> web.Response:
    experiment = await authorized_experiment(request)
    return respond(request, {"environment": await request.app[STORAGE_KEY].environment(experiment["id"])})

