"""Limits that the client and the server both enforce, so that nothing the client accepts is refused later."""
from __future__ import annotations

MAX_NAME_LENGTH = 256  # a metric name, namespace, workspace, directory segment or prefix, in characters
# Objects/arrays inside a parameter value or log context: orjson.dumps stops at 254 levels (with the record around).
MAX_NESTING = 200
