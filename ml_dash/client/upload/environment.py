"""Send the run's environment (the meta file's ``"environment"``) to the server, once per capture.

``PUT /api/v1/experiments/{id}/environment`` replaces the experiment's environment, so a retry never duplicates
anything; the sync state remembers the ``captured_at`` the server acknowledged, so a restart or ``ml-dash sync``
does not send it again.
"""
from __future__ import annotations

import logging
from typing import Any

import orjson

from ml_dash.client.upload.http import HTTPError
from ml_dash.format.limits import MAX_ENVIRONMENT_BYTES

logger = logging.getLogger("ml_dash")


async def push_environment(upload: Any) -> None:
    """``upload``: the ``RunUpload``. A server that refuses the environment (an older one answers 404 or 405 for the
    route) is told once and not asked again for this capture: the environment is never worth blocking a run's data."""
    environment = upload.environment
    state = upload.state
    if not isinstance(environment, dict) or state.experiment_id is None:
        return
    stamp = environment.get("captured_at")
    if stamp is None or state.environment_sent == stamp:
        return
    size = len(orjson.dumps(environment))
    if size > MAX_ENVIRONMENT_BYTES:
        logger.warning("ml-dash: the run's environment of %s is %s bytes, over the server's limit of %s: not sent",
                       state.directory, f"{size:,}", f"{MAX_ENVIRONMENT_BYTES:,}")
    else:
        await _send(upload, environment)
    state.environment_sent = stamp
    state.save()


async def _send(upload: Any, environment: dict[str, Any]) -> None:
    state = upload.state
    try:
        await upload.api.call("PUT", f"/experiments/{state.experiment_id}/environment", environment)
    except HTTPError as error:
        if error.status in (404, 405):
            logger.debug("ml-dash: the server keeps no run environment (%s)", error)
        else:
            logger.warning("ml-dash: the server refused the run's environment of %s: %s", state.directory, error)
