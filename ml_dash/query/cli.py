"""``ml-dash ls``, ``show``, ``export`` and ``rm``: the Api from a terminal. Errors are one line and exit 1."""
from __future__ import annotations

import argparse
import csv
import datetime
import io
import os
import sys
from typing import Any, Callable

from ml_dash.query.api import Api
from ml_dash.query.errors import ApiError

COLUMN_WIDTH = 40  # a cell longer than this is cut with an ellipsis


def _source_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--remote", metavar="URL", help="read this ml-dash server (default: ML_DASH_REMOTE / "
                                                        "ML_LOGGER_REMOTE, else the local root)")
    parser.add_argument("--root", metavar="DIR", help="local root to read without --remote (default .ml-logger)")
    parser.add_argument("--token", help="the server's bearer token (default: ML_DASH_TOKEN)")


def add_query_subcommands(sub: "argparse._SubParsersAction") -> None:
    ls = sub.add_parser("ls", help="list experiments as a table (filter, order, limit)")
    _source_arguments(ls)
    ls.add_argument("--namespace")
    ls.add_argument("--workspace")
    ls.add_argument("--filter", help="e.g. \"params.lr < 0.01 and status = 'completed'\" (docs/query.md)")
    ls.add_argument("--order-by", help="e.g. \"metrics.loss asc, startedAt desc\"")
    ls.add_argument("--limit", type=int, default=50, help="at most this many (default 50; 0: all)")
    ls.add_argument("--columns", help="extra columns, comma separated: params.lr,metrics.loss")
    ls.add_argument("--deleted", action="store_true", help="include soft-deleted experiments")
    ls.set_defaults(func=_guarded(_ls))

    show = sub.add_parser("show", help="one experiment: params, last metrics, status, tags, notes, environment")
    _source_arguments(show)
    show.add_argument("experiment", metavar="ID|PATH")
    show.add_argument("--packages", action="store_true", help="list the run's installed packages too")
    show.set_defaults(func=_guarded(_show))

    export = sub.add_parser("export", help="an experiment's metrics by step as CSV or Parquet")
    _source_arguments(export)
    export.add_argument("experiment", metavar="ID|PATH")
    export.add_argument("--format", choices=("csv", "parquet"), default="csv")
    export.add_argument("--keys", help="metrics to export, comma separated (default: all)")
    export.add_argument("--out", help="output file (default <prefix>.<format>; '-' writes CSV to stdout)")
    export.add_argument("--force", action="store_true", help="overwrite the output file if it exists")
    export.set_defaults(func=_guarded(_export))

    rm = sub.add_parser("rm", help="soft-delete an experiment (hidden from lists until restored)")
    _source_arguments(rm)
    rm.add_argument("experiment", metavar="ID|PATH")
    rm.add_argument("--restore", action="store_true", help="restore it instead")
    rm.set_defaults(func=_guarded(_rm))


def _guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except BrokenPipeError:  # `ml-dash export ... --out - | head`: the reader left; not an error
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush must not fail again
            return 0
        except (ApiError, LookupError, ValueError, TypeError, ImportError, OSError) as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            print(f"ml-dash {args.command}: {message}", file=sys.stderr)
            return 1

    return run


def _api(args: argparse.Namespace) -> Api:
    return Api(remote=args.remote, local_root=args.root, token=args.token)


def _when(stamp: Any) -> str:
    if not isinstance(stamp, (int, float)):
        return "-"
    return datetime.datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, (list, tuple)):
        text = ",".join(map(str, value)) or "-"
    else:
        text = str(value)
    text = text.replace("\n", " ")
    return text if len(text) <= COLUMN_WIDTH else text[:COLUMN_WIDTH - 1] + "…"


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


def _path(record: Any) -> str:
    return "/".join(p for p in (record.namespace, record.workspace, record.directory, record.prefix) if p)


def _ls(args: argparse.Namespace) -> int:
    if args.limit < 0:
        raise ValueError("--limit must be 0 (all) or more")
    api = _api(args)
    records = api.experiments(args.namespace, args.workspace, args.filter, args.order_by,
                                     args.limit or None, include_deleted=args.deleted)
    extra = [c.strip() for c in (args.columns or "").split(",") if c.strip()]
    header = ["ID", "EXPERIMENT", "STATUS", "STARTED", "TAGS", *extra]
    rows = []
    for record, flat in zip(records, records.rows()):
        status = (record.status or "-") + (" (deleted)" if record.deleted_at else "")
        rows.append([("-" if record.id == _path(record) else record.id[:12]), _cell(_path(record)), status,
                     _when(record.started_at), _cell(record.tags), *(_cell(flat.get(c)) for c in extra)])
    print(table(header, rows))
    if not records.total and not api.remote:
        print(f"no experiments under {os.path.abspath(api.local_root)} (run where .ml-logger is, pass --root DIR, "
              f"or --remote URL to list a server's)", file=sys.stderr)
        return 0
    more = records.total - len(records)
    print(f"{len(records)} of {records.total} experiment(s)" + (f" (--limit to see the other {more})" if more
                                                                else ""), file=sys.stderr)
    return 0


def _find(api: Api, key: str) -> Any:
    """By id, path, or a unique id prefix of at least 6 characters (what ``ls`` prints)."""
    try:
        return api.experiment(key)
    except LookupError:
        if len(key) < 6:
            raise
        found = [r for r in api.experiments(include_deleted=True) if r.id.startswith(key)]
        if len(found) == 1:
            return found[0]
        raise LookupError(f"no experiment {key!r}" if not found else f"{key!r} is the start of {len(found)} "
                                                                        "experiments' ids: give more of it") from None


def _show(args: argparse.Namespace) -> int:
    api = _api(args)
    record = _find(api, args.experiment)
    out = io.StringIO()
    fields = [("id", record.id), ("experiment", _path(record)), ("status", record.status),
              ("started", _when(record.started_at)), ("completed", _when(record.completed_at)),
              ("tags", ", ".join(record.tags) or "-"), ("host", record.hostname)]
    if record.deleted_at:
        fields.append(("deleted", _when(record.deleted_at)))
    for name, value in fields:
        print(f"{name + ':':<12}{value if value is not None else '-'}", file=out)
    if record.notes:
        print("notes:\n  " + record.notes.replace("\n", "\n  "), file=out)
    from ml_dash.query.frames import flatten

    environment = dict(record.environment() or {})
    packages = environment.pop("packages", None) if not args.packages else None
    if packages:  # hundreds of lines: on request only
        environment["packages"] = f"{len(packages)} (--packages lists them)"
    for title, values in (("params", flatten(record.params, "")), ("last metrics", record.last_metrics),
                          ("environment", flatten(environment, ""))):
        if values:
            print(f"{title}:", file=out)
            width = max(len(k) for k in values)
            for key, value in values.items():
                print(f"  {key:<{width}}  {_cell(value) if not isinstance(value, str) else value}", file=out)
    files = record.files()
    if files:
        print("files:", file=out)
        width = max(len(f["path"]) for f in files)
        for f in files:
            print(f"  {f['path']:<{width}}  {_size(f['size'])}", file=out)
    sys.stdout.write(out.getvalue())
    return 0


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def _export(args: argparse.Namespace) -> int:
    record = _find(_api(args), args.experiment)
    keys = [k.strip() for k in args.keys.split(",") if k.strip()] if args.keys else None
    if args.format == "parquet":
        try:
            import pyarrow
            import pyarrow.parquet
        except ImportError:
            raise ImportError("--format parquet needs pyarrow: pip install pyarrow (or use --format csv)") \
                from None
    out = args.out or f"{record.prefix.replace('/', '_')}.{args.format}"
    if out == "-" and args.format == "parquet":
        raise ValueError("--out - (stdout) is for CSV only")
    if out != "-" and os.path.exists(out) and not args.force:
        raise FileExistsError(f"{out} exists: pass --force to overwrite it, or --out NAME")
    arrays = record.to_numpy(keys)
    steps = arrays.pop("step")
    times = record.step_times(steps)
    arrays = {"step": steps, "time": times, **arrays}  # time: when the step was logged (UTC)
    if args.format == "parquet":
        table = pyarrow.table(arrays)
        stamps = pyarrow.array((times * 1e6).round().astype("int64"), pyarrow.timestamp("us", tz="UTC"),
                               mask=times != times)
        pyarrow.parquet.write_table(table.set_column(1, "time", stamps), out)
    else:
        stream = sys.stdout if out == "-" else open(out, "w", newline="")
        try:
            writer = csv.writer(stream)
            names = list(arrays)
            writer.writerow(names)
            iso = [_iso(t) for t in times.tolist()]
            for row in zip(*(iso if n == "time" else arrays[n].tolist() for n in names)):
                writer.writerow(["" if v != v else v for v in row])
        finally:
            if stream is not sys.stdout:
                stream.close()
    if out != "-":
        print(f"wrote {len(steps)} steps x {len(arrays) - 2} metrics to {out}", file=sys.stderr)
    return 0


def _iso(stamp: float) -> str:
    if stamp != stamp:
        return ""
    return datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc).isoformat(timespec="milliseconds")


def _rm(args: argparse.Namespace) -> int:
    api = _api(args)
    record = _find(api, args.experiment)
    if args.restore:
        record.restore()
        print(f"restored {_path(record)} ({record.id})")
    else:
        record.delete()
        where = f" --remote {api.remote}" if api.remote else ""  # else the hint restores a local copy instead
        print(f"deleted {_path(record)} ({record.id}); `ml-dash rm --restore{where} {record.id}` brings it back")
    return 0
