"""``ml-dash server``: the subcommand the project's console script mounts, and its entry point."""
from __future__ import annotations

import argparse
import errno
import logging
import sys

from ml_dash.server.config import ConfigError, ServerConfig


def add_server_subcommand(subparsers: "argparse._SubParsersAction") -> argparse.ArgumentParser:
    # allow_abbrev=False: else argparse reads ``copy --to`` as an ambiguous abbreviation of --token/--tokens-file.
    parser = subparsers.add_parser("server", help="run the ml-dash server (REST ingest + GraphQL)", allow_abbrev=False,
                                   description="Run the ml-dash server. Settings fall back to ML_DASH_HOST, "
                                               "ML_DASH_PORT, ML_DASH_DATA, ML_DASH_DB, ML_DASH_WORKERS, "
                                               "ML_DASH_FILES, ML_DASH_S3_ENDPOINT, ML_DASH_TOKENS and "
                                               "ML_DASH_TOKENS_FILE.")
    configure_server_parser(parser)
    return parser


def configure_server_parser(parser: argparse.ArgumentParser) -> None:
    """Serving flags, ``server_main`` as the default action, and the subcommands (``ml-dash server`` and
    ``python -m ml_dash.server`` share it)."""
    add_server_arguments(parser)
    parser.set_defaults(func=server_main)
    add_server_commands(parser)


def add_server_commands(parser: argparse.ArgumentParser) -> None:
    """Subcommands beside serving: ``copy`` (SQLite → PostgreSQL), ``fetch-chart-library``. Without one, the parser
    runs the server."""
    from ml_dash.server.chart_library import add_fetch_subcommand
    from ml_dash.server.storage.copy import add_copy_subcommand

    commands = parser.add_subparsers(dest="server_command", metavar="{copy,fetch-chart-library}")
    add_copy_subcommand(commands)
    add_fetch_subcommand(commands)


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to bind (default 127.0.0.1; anything else requires tokens)")
    parser.add_argument("--port", type=int, help="port to listen on (default 8000; 0 picks a free one)")
    parser.add_argument("--data", help="data directory for the database and files (default ./ml-dash-data)")
    parser.add_argument("--db", help="database URL: postgresql://user:password@host/db, or sqlite:///path "
                                     "(default: SQLite inside --data)")
    parser.add_argument("--workers", type=int, help="worker processes sharing the port (default 1; PostgreSQL "
                                                    "recommended above 1)")
    parser.add_argument("--files", metavar="s3://BUCKET[/PREFIX]",
                        help="store uploaded files in an S3-compatible bucket (needs ml-dash[s3]; credentials and "
                             "region from the AWS_* variables or ~/.aws; default: blobs/ inside --data)")
    parser.add_argument("--s3-endpoint", metavar="URL",
                        help="S3-compatible endpoint for --files, e.g. http://minio:9000 (default: AWS S3)")
    parser.add_argument("--chart-js", metavar="PATH",
                        help="plotly.js bundle for the dashboard (default: the basic bundle fetched by "
                             "`ml-dash server fetch-chart-library`, else the plotly package's plotly.min.js)")
    parser.add_argument("--token", action="append", metavar="TOKEN[=NS1,NS2]",
                        help="accept this bearer token, optionally limited to namespaces; repeatable")
    parser.add_argument("--tokens-file", help="file with one TOKEN[=NS1,NS2] per line ('#' starts a comment)")


def server_main(args: argparse.Namespace) -> int:
    from aiohttp import web

    from ml_dash.server.http.app import create_app

    try:
        config = ServerConfig.resolve(host=args.host, port=args.port, data_dir=args.data, db_url=args.db,
                                      tokens=args.token, tokens_file=args.tokens_file,
                                      workers=getattr(args, "workers", None), files=getattr(args, "files", None),
                                      s3_endpoint=getattr(args, "s3_endpoint", None),
                                      chart_js=getattr(args, "chart_js", None))
    except (ConfigError, OSError, ValueError) as exc:
        print(f"ml-dash server: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    auth = f"{len(config.tokens)} token(s)" if config.tokens else "no authentication (loopback only)"
    where = f"data: {config.data_dir}" + (f", files: {config.files}" if config.files else "")
    if config.workers > 1:
        from ml_dash.server.workers import serve_workers

        return serve_workers(config, banner=f"[{where}, {auth}]")
    # print=... announces the bound address on stdout, which running_server() reads to learn a port-0 choice.
    try:
        web.run_app(create_app(config), host=config.host, port=config.port, access_log=None,
                    print=lambda line: print(f"{line} [{where}, {auth}]", flush=True))
    except ConfigError as exc:  # found at startup, e.g. an unreachable --files bucket
        print(f"ml-dash server: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        print(f"ml-dash server: port {config.port} on {config.host} is already in use (another server running? "
              f"pick another with --port)", file=sys.stderr)
        return 2
    return 0


def run_server(config: ServerConfig) -> None:
    """Serve ``config`` in this process until interrupted (for embedding; the CLI goes through ``server_main``)."""
    from aiohttp import web

    from ml_dash.server.http.app import create_app

    config.check()
    web.run_app(create_app(config), host=config.host, port=config.port, access_log=None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml_dash.server", description="Run the ml-dash server.",
                                     allow_abbrev=False)
    configure_server_parser(parser)
    args = parser.parse_args(argv)
    return args.func(args)
