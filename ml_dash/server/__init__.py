"""ml-dash server: REST ingest (docs/protocol.md), GraphQL reads and an embedded SQLite store."""
from ml_dash.server.cli import run_server
from ml_dash.server.config import ServerConfig
from ml_dash.server.http.app import create_app

__all__ = ["create_app", "ServerConfig", "run_server"]
