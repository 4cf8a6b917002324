"""ml-dash server: REST ingest (docs/protocol.md), GraphQL reads and an embedded SQLite store."""
from ._app import create_app
from ._cli import run_server
from ._config import ServerConfig

__all__ = ["create_app", "ServerConfig", "run_server"]
