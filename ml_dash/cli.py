"""The ``ml-dash`` console script: ``ml-dash server …``, ``ml-dash sync PATH…`` and ``ls``/``show``/``export``/``rm``."""
from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ml-dash", description="ml-dash experiment tracker")
    sub = parser.add_subparsers(dest="command", required=True)
    try:
        from ml_dash.server.cli import add_server_subcommand
    except ImportError as exc:  # the server extra is not installed
        missing = str(exc)
        p = sub.add_parser("server", help="run the ml-dash server (needs the server extra: "
                                                     "pip install -e '.[server]' in the repository)")
        p.set_defaults(func=lambda args: sys.exit(f"ml-dash server is unavailable: {missing}"))
    else:
        add_server_subcommand(sub)
    try:
        from ml_dash.client.upload.cli import add_sync_subcommand
    except ImportError:
        pass
    else:
        add_sync_subcommand(sub)
    from ml_dash.query.alerts_cli import add_alerts_subcommand
    from ml_dash.query.cli import add_query_subcommands

    add_query_subcommands(sub)
    add_alerts_subcommand(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result = args.func(args)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
