"""The ``ml-dash sync`` subcommand."""
from __future__ import annotations

import argparse
import logging
import sys

from ml_dash.format.layout import META_FILE, SYNC_STATE_FILE
from ml_dash.settings import REMOTE, TOKEN


def add_sync_subcommand(subparsers) -> None:
    p = subparsers.add_parser("sync", help="upload runs logged offline or interrupted to an ml-dash server",
                              description=f"Upload every experiment found under PATH (directories holding "
                                          f"{META_FILE}), resuming exactly where the server stopped.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="an experiment directory or a directory above some")
    p.add_argument("--remote", help="server URL (default: $ML_DASH_REMOTE or $ML_LOGGER_REMOTE, else the server each "
                                    f"experiment was logged to, as its {SYNC_STATE_FILE} records)")
    p.add_argument("--token", help="bearer token for servers with auth (default: $ML_DASH_TOKEN)")
    p.add_argument("--attempts", type=int, default=8, help="attempts per request before giving up (default 8)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-mark-crashed", action="store_true",
                   help="leave RUNNING a run whose process on this host is gone without complete() or fail() "
                        "(by default it is marked FAILED once its data is uploaded)")
    p.set_defaults(func=run_sync)


def run_sync(args: argparse.Namespace) -> int:
    from ml_dash.client.upload.sync_command import format_summary, sync_paths

    from ml_dash.client.upload.sync_command import NO_REMOTE, find_experiments, recorded_remote
    from ml_dash.format.layout import meta_ranks

    from ml_dash.format.names import check_remote

    remote, note = check_remote(REMOTE.get(args.remote) or None, "ml-dash sync")
    if note:
        print(f"ml-dash: {note}", file=sys.stderr)
    if not remote and not any(recorded_remote(d, r) for d in find_experiments(args.paths) for r in meta_ranks(d)):
        # Each experiment goes to the server it was logged to (.ml-dash-sync.json) unless one is given.
        print(f"ml-dash sync: {NO_REMOTE}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    token = TOKEN.get(args.token)
    results = sync_paths(args.paths, remote, token, show_progress=not args.no_progress and sys.stderr.isatty(),
                         attempts=max(1, args.attempts), mark_crashed=not args.no_mark_crashed)
    print(format_summary(results))
    return 1 if not results or any(r.error for r in results) else 0
