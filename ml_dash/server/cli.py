"""``ml-dash server``: the subcommand the project's console script mounts, and its entry point."""
from __future__ import annotations

import argparse
import errno
import logging
import sys

from ml_dash.server.config import SHUTDOWN_TIMEOUT_S, ConfigError, ServerConfig


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

    commands = parser.add_subparsers(dest="server_command", metavar="{copy,fetch-chart-library,gc}")
    add_copy_subcommand(commands)
    add_fetch_subcommand(commands)
    add_gc_subcommand(commands)


def add_gc_subcommand(subparsers: "argparse._SubParsersAction") -> None:
    parser = subparsers.add_parser(
        "gc", help="purge soft-deleted experiments' rows and the file blobs nothing else names",
        description="Remove soft-deleted experiments (ml-dash rm, the dashboard, deleteExperiment) for good: their "
                    "metrics, parameters, logs, runs and file records, in batches (memory stays bounded), and the "
                    "blobs no remaining file record names. The server may keep running.")
    parser.add_argument("--data", help="the server's data directory (default ./ml-dash-data, or ML_DASH_DATA)")
    parser.add_argument("--db", help="database URL, as for the server (default: SQLite inside --data)")
    parser.add_argument("--files", metavar="s3://BUCKET[/PREFIX]", help="the server's S3 file store, if it has one")
    parser.add_argument("--s3-endpoint", metavar="URL")
    parser.add_argument("--older-than", type=float, default=0.0, metavar="DAYS",
                        help="only experiments deleted at least this many days ago (default 0: all)")
    parser.add_argument("--batch", type=int, default=10_000, help="rows per delete (default 10000)")
    parser.add_argument("--sweep-blobs", action="store_true",
                        help="also delete every blob no file record names (e.g. older versions of a re-saved file), "
                             "among those stored more than an hour ago; walks the whole blob store")
    parser.add_argument("--dry-run", action="store_true", help="list what would be purged, change nothing")
    parser.set_defaults(func=gc_main)


# A blob is written before the file record that names it: younger blobs may be an upload in flight.
SWEEP_MIN_AGE = 3600.0


async def _sweep(storage, blobs, before: float, batch: int = 1000) -> int:
    """Delete the blobs stored before ``before`` that no file record names, checked ``batch`` at a time."""
    deleted, pending = 0, []

    async def check() -> int:
        unnamed = await storage.unnamed_blobs(pending)
        for sha in unnamed:
            await blobs.delete(sha)
        pending.clear()
        return len(unnamed)

    async for sha in blobs.stored_before(before):
        pending.append(sha)
        if len(pending) >= batch:
            deleted += await check()
    return deleted + await check()


def gc_main(args: argparse.Namespace) -> int:
    import asyncio
    import time

    from ml_dash.server.files.registry import open_file_store
    from ml_dash.server.storage.registry import open_storage

    if args.batch < 1 or args.older_than < 0:
        print("ml-dash server gc: --batch must be at least 1 and --older-than not negative", file=sys.stderr)
        return 2
    try:
        config = ServerConfig.resolve(data_dir=args.data, db_url=args.db, files=args.files,
                                      s3_endpoint=args.s3_endpoint)
    except (ConfigError, OSError, ValueError) as exc:
        print(f"ml-dash server gc: {exc}", file=sys.stderr)
        return 2
    before = time.time() - args.older_than * 86400

    async def run() -> dict[str, int] | None:
        storage = open_storage(config.db_url, config.sqlite_path, config.series_cache_mb, config.sqlite_readers)
        blobs = open_file_store(config)
        await storage.open()
        try:
            if args.dry_run:
                found = await storage.deleted_experiments(before, 10**9)
                for _pk, experiment_id, where in found:
                    print(f"would purge {where} ({experiment_id})")
                print(f"{len(found)} experiment(s) would be purged")
                return None
            await blobs.open()
            try:
                counts = await storage.purge_deleted(before, args.batch, blobs.delete, echo=print)
                if args.sweep_blobs:
                    counts["blobs"] += await _sweep(storage, blobs, time.time() - SWEEP_MIN_AGE)
                return counts
            finally:
                await blobs.close()
        finally:
            await storage.close()

    started = time.perf_counter()
    try:
        counts = asyncio.run(run())
    except (ConfigError, OSError) as exc:
        print(f"ml-dash server gc: {exc}", file=sys.stderr)
        return 1
    if counts is not None:
        rows = ", ".join(f"{n:,} {table}" for table, n in counts.items() if table not in ("experiments", "blobs"))
        print(f"purged {counts['experiments']} experiment(s) in {time.perf_counter() - started:.1f} s: {rows}; "
              f"{counts['blobs']} blob(s) deleted")
    return 0


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
    parser.add_argument("--alert-webhook-allow", action="append", metavar="HOST|NETWORK",
                        help="where alert webhooks may point (host glob or network, repeatable; default: public "
                             "addresses only; ML_DASH_ALERT_WEBHOOK_ALLOW)")
    parser.add_argument("--crash-after", type=float, metavar="SECONDS",
                        help="mark a running run CRASHED after this long without a heartbeat (default 120, or "
                             "ML_DASH_CRASH_AFTER)")


def server_main(args: argparse.Namespace) -> int:
    from aiohttp import web

    from ml_dash.server.http.app import create_app

    try:
        config = ServerConfig.resolve(host=args.host, port=args.port, data_dir=args.data, db_url=args.db,
                                      tokens=args.token, tokens_file=args.tokens_file,
                                      workers=getattr(args, "workers", None), files=getattr(args, "files", None),
                                      s3_endpoint=getattr(args, "s3_endpoint", None),
                                      chart_js=getattr(args, "chart_js", None),
                                      alert_webhook_allow=getattr(args, "alert_webhook_allow", None),
                                      crash_after=getattr(args, "crash_after", None))
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
                    shutdown_timeout=SHUTDOWN_TIMEOUT_S,
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
    web.run_app(create_app(config), host=config.host, port=config.port, access_log=None,
                shutdown_timeout=SHUTDOWN_TIMEOUT_S)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml_dash.server", description="Run the ml-dash server.",
                                     allow_abbrev=False)
    configure_server_parser(parser)
    args = parser.parse_args(argv)
    return args.func(args)
