"""Server configuration: ``ServerConfig`` owns every server setting, and modules get plain values from it. Each
resolves as argument → ``ML_DASH_<NAME>`` (→ ``ML_LOGGER_<NAME>`` where that spelling was always read) → default.

The settings are declared here with the client's ``Setting`` class (so docs/settings.md lists them too), not in
ml_dash/settings.py: their defaults and checks live beside ``ServerConfig``, and the client, imported by every
training script, carries no server knobs."""
from __future__ import annotations

import importlib.util
import ipaddress
import os
import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from ml_dash.format.limits import MAX_NAME_LENGTH
from ml_dash.settings import Setting, positive_seconds


def _megabytes(raw: str) -> float:
    if not raw.strip():  # blank: the default, as before this was a Setting
        return SERIES_CACHE_MB.default
    try:
        return float(raw)
    except ValueError:
        raise ValueError("must be a number of megabytes") from None


def _reader_threads(raw: str) -> int:
    if not raw.strip():
        return SQLITE_READERS.default
    try:
        count = int(raw)
    except ValueError:
        count = 0
    if count < 1:
        raise ValueError("must be a positive number of reader threads")
    return count


_SERVER = "server"  # the scope docs/settings.md groups these under
HOST: Setting[str] = Setting("HOST", str, "127.0.0.1", "address to bind; anything but loopback requires tokens",
                             scope=_SERVER)
PORT: Setting[int] = Setting("PORT", int, 8000, "port to listen on", scope=_SERVER)
DATA: Setting[str] = Setting("DATA", str, "./ml-dash-data", "data directory: the SQLite file and `blobs/`",
                             scope=_SERVER)
DB: Setting[str | None] = Setting("DB", str, None, "`postgresql://…` or `sqlite:///path`; none: SQLite in the data "
                                  "directory", scope=_SERVER)
WORKERS: Setting[int] = Setting("WORKERS", int, 1, "server processes sharing the port", scope=_SERVER)
FILES: Setting[str | None] = Setting("FILES", str, None, "`s3://bucket[/prefix]` for uploaded files; none: `blobs/` "
                                     "in the data directory", scope=_SERVER)
S3_ENDPOINT: Setting[str | None] = Setting("S3_ENDPOINT", str, None, "endpoint URL of MinIO, Ceph, … for "
                                           "`ML_DASH_FILES`; none: AWS S3", scope=_SERVER)
CHART_JS: Setting[str | None] = Setting("CHART_JS", str, None, "plotly.js bundle the dashboard loads; none: the "
                                        "basic bundle if fetched, else the `plotly` package's", scope=_SERVER)
TOKENS: Setting[str] = Setting("TOKENS", str, "", "bearer tokens (`TOKEN[=NS1,NS2]`, whitespace-separated), added "
                               "to `--token`", legacy=False, scope=_SERVER)
TOKENS_FILE: Setting[str | None] = Setting("TOKENS_FILE", str, None, "file of `TOKEN[=NS1,NS2]` lines, `#` comments",
                                           scope=_SERVER)
ALLOWED_HOSTS: Setting[str] = Setting("ALLOWED_HOSTS", str, "", "`Host` names answered besides localhost "
                                      "(comma- or space-separated)", scope=_SERVER)
BODY_TIMEOUT: Setting[float] = Setting("BODY_TIMEOUT", float, 30.0, "seconds for a whole request body (not file "
                                       "uploads)", scope=_SERVER)
BODY_IDLE_TIMEOUT: Setting[float] = Setting("BODY_IDLE_TIMEOUT", float, 10.0, "seconds without a byte of body "
                                            "before 408", scope=_SERVER)
INGEST_PROCESSES: Setting[int | None] = Setting("INGEST_PROCESSES", int, None, "processes decoding large batch "
                                                "bodies; `0`: a thread; none: half the cores from 4 on (at most 4), "
                                                "else 0", scope=_SERVER)
SERIES_CACHE_MB: Setting[float] = Setting("SERIES_CACHE_MB", float, 256.0, "megabytes of decoded series cached per "
                                          "process; `0` turns the cache off", convert=_megabytes, legacy=False,
                                          scope=_SERVER)
SQLITE_READERS: Setting[int] = Setting("SQLITE_READERS", int, 3, "SQLite reader threads, each with its own "
                                       "connection", convert=_reader_threads, legacy=False, scope=_SERVER)
QUERY_TIMEOUT: Setting[float] = Setting("QUERY_TIMEOUT", float, 30.0, "seconds a read may run in the database before "
                                       "it is stopped (503): PostgreSQL's statement_timeout, SQLite's progress "
                                       "handler", legacy=False, scope=_SERVER)
ALERT_WEBHOOK_ALLOW: Setting[str] = Setting("ALERT_WEBHOOK_ALLOW", str, "", "where alert webhooks may point: host "
                                            "globs and networks (`hooks.slack.com 10.0.0.0/8`); empty: public "
                                            "addresses only (docs/alerts.md)", legacy=False, scope=_SERVER)
CHUNK_CODEC: Setting[str] = Setting("CHUNK_CODEC", ("zstd", "raw"), "zstd", "format new metric chunks are written "
                                     "in: `zstd` (compressed, docs/server.md), `raw` (uncompressed, the old layout, "
                                     "for comparisons); both are always read", legacy=False, scope=_SERVER)
CRASH_AFTER: Setting[float] = Setting("CRASH_AFTER", float, 120.0, "seconds without a heartbeat after which a running "
                                      "run is marked `CRASHED`", convert=positive_seconds, legacy=False,
                                      scope=_SERVER)

DEFAULT_HOST = HOST.default
DEFAULT_PORT = PORT.default
DEFAULT_DATA_DIR = DATA.default

# A token maps to the namespaces it may touch; ``None`` means every namespace.
TokenTable = Mapping[str, "frozenset[str] | None"]

# How long a stopping server (SIGTERM, Ctrl-C) waits for requests in flight; aiohttp's default is 60 s. A client
# whose request is cut retries the same byte range, which the server then stores exactly once.
SHUTDOWN_TIMEOUT_S = 5.0


class ConfigError(ValueError):
    """A configuration the server refuses to start with; the message says how to fix it."""


@dataclass(frozen=True)
class ServerConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    data_dir: str = DEFAULT_DATA_DIR
    db_url: str | None = None  # None: SQLite file inside data_dir
    tokens: TokenTable = field(default_factory=dict)
    max_body_bytes: int = 32 * 1024 * 1024
    max_events: int = 100_000
    max_name_length: int = MAX_NAME_LENGTH  # the client's limit too (format/limits.py)
    max_file_bytes: int = 16 * 1024**3
    # Decoding budget of a msgpack body (values in its arrays and maps): bounds the memory one body costs (ingest.py).
    max_body_items: int = 2_000_000
    max_json_bytes: int = 4 * 1024 * 1024  # JSON bodies (curl users) cannot be budgeted while decoding: a size cap
    # A compressed (Content-Encoding) file upload inflates to at most max_inflation_ratio × its compressed length
    # (when given) and never past max_inflated_bytes.
    max_inflated_bytes: int = 256 * 1024 * 1024
    max_inflation_ratio: int = 100
    # seconds for a whole request body (batch, run, experiment); file uploads: see below
    body_timeout: float = BODY_TIMEOUT.default
    body_idle_timeout: float = BODY_IDLE_TIMEOUT.default  # seconds without a byte of body before 408 (file uploads too)
    file_body_timeout: float = 3600.0  # seconds for a whole file upload (16 GiB at 5 MB/s is ~1 h)
    workers: int = WORKERS.default  # processes serving one port (SO_REUSEPORT); see _workers
    files: str | None = None  # None: blobs under data_dir; "s3://bucket/prefix": an S3-compatible store (_s3_files)
    s3_endpoint: str | None = None  # e.g. http://minio:9000; None: AWS S3 (region etc. from boto3's own chain)
    chart_js: str | None = None  # a plotly.js bundle to serve; None: the basic bundle if fetched, else plotly's full one
    allowed_hosts: tuple[str, ...] = ()  # Host names answered besides localhost/127.0.0.1/[::1] (http/security.py)
    # Processes that decode large batch bodies (ingest_pool.py); None: half the cores from 4 on (at most 4), else 0;
    # 0: a thread.
    ingest_processes: int | None = None
    # Seconds a batch sent ahead waits for the batch before it (http/batch_order.py) before its 409 stands.
    order_wait: float = 10.0
    # Megabytes of decoded series each process caches (series/cache.py); 0: no cache.
    series_cache_mb: float = SERIES_CACHE_MB.default
    sqlite_readers: int = SQLITE_READERS.default  # reader threads of the SQLite backend (storage/sqlite)
    # Seconds a read may run in the database before it is stopped (503): PostgreSQL's statement_timeout, SQLite's
    # progress handler. A heavy filter over many experiments cannot hold a connection or a reader thread longer.
    query_timeout: float = QUERY_TIMEOUT.default
    # Where alert webhooks may point (alerts/rules.py WebhookAllowList): host globs and networks; () public only.
    alert_webhook_allow: tuple[str, ...] = ()
    # Seconds without a heartbeat before a RUNNING run (of a client that sends them) is CRASHED (docs/distributed.md).
    crash_after: float = CRASH_AFTER.default

    @classmethod
    def resolve(
        cls,
        host: str | None = None,
        port: int | None = None,
        data_dir: str | None = None,
        db_url: str | None = None,
        tokens: Iterable[str] | None = None,
        tokens_file: str | None = None,
        workers: int | None = None,
        files: str | None = None,
        s3_endpoint: str | None = None,
        chart_js: str | None = None,
        body_timeout: float | None = None,
        body_idle_timeout: float | None = None,
        allowed_hosts: Iterable[str] | None = None,
        ingest_processes: int | None = None,
        series_cache_mb: float | None = None,
        sqlite_readers: int | None = None,
        query_timeout: float | None = None,
        alert_webhook_allow: Iterable[str] | None = None,
        crash_after: float | None = None,
        **limits: int,
    ) -> "ServerConfig":
        """Build a config from explicit arguments, falling back to ``ML_DASH_*`` variables and defaults."""
        table: dict[str, frozenset[str] | None] = {}
        for entry in _token_entries(tokens, tokens_file):
            token, namespaces = parse_token_entry(entry)
            table[token] = namespaces
        config = cls(
            host=HOST.get(host),
            port=PORT.get(port),
            data_dir=DATA.get(data_dir),
            db_url=DB.get(db_url),
            tokens=table,
            workers=WORKERS.get(workers),
            files=FILES.get(files),
            s3_endpoint=S3_ENDPOINT.get(s3_endpoint),
            chart_js=CHART_JS.get(chart_js),
            body_timeout=BODY_TIMEOUT.get(body_timeout),
            body_idle_timeout=BODY_IDLE_TIMEOUT.get(body_idle_timeout),
            allowed_hosts=tuple(allowed_hosts if allowed_hosts is not None else
                                ALLOWED_HOSTS.get().replace(",", " ").split()),
            ingest_processes=INGEST_PROCESSES.get(ingest_processes),
            series_cache_mb=SERIES_CACHE_MB.get(series_cache_mb),
            sqlite_readers=SQLITE_READERS.get(sqlite_readers),
            query_timeout=QUERY_TIMEOUT.get(query_timeout),
            alert_webhook_allow=tuple(alert_webhook_allow if alert_webhook_allow is not None else
                                      ALERT_WEBHOOK_ALLOW.get().replace(",", " ").split()),
            crash_after=CRASH_AFTER.get(crash_after),
            **limits,
        )
        config.check()
        return config

    @property
    def sqlite_path(self) -> str:
        return os.path.join(self.data_dir, "ml-dash.sqlite3")

    def check(self) -> None:
        """Refuse configurations that would expose data: a non-loopback bind without any token."""
        if self.workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {self.workers}")
        if self.ingest_processes is not None and self.ingest_processes < 0:
            raise ConfigError(f"ML_DASH_INGEST_PROCESSES must be 0 (threads only) or more, got {self.ingest_processes}")
        if self.sqlite_readers < 1:
            raise ConfigError(f"ML_DASH_SQLITE_READERS must be a positive number of reader threads, got "
                              f"{self.sqlite_readers}")
        if not self.query_timeout > 0:
            raise ConfigError(f"ML_DASH_QUERY_TIMEOUT must be positive seconds, got {self.query_timeout}")
        if not self.crash_after > 0:
            raise ConfigError(f"ML_DASH_CRASH_AFTER must be a positive number of seconds, got {self.crash_after}")
        if not (self.body_timeout > 0 and self.body_idle_timeout > 0 and self.file_body_timeout > 0):
            raise ConfigError("body timeouts (ML_DASH_BODY_TIMEOUT, ML_DASH_BODY_IDLE_TIMEOUT) must be positive "
                              "seconds")
        self.check_files()
        if self.chart_js is not None and not os.path.isfile(self.chart_js):
            raise ConfigError(f"--chart-js (ML_DASH_CHART_JS): no such file {self.chart_js!r}")
        if not self.tokens and not is_loopback(self.host):
            raise ConfigError(
                f"refusing to bind {self.host!r} without authentication: anyone on the network could read and write "
                "experiments. Pass --token TOKEN, --tokens-file FILE or set ML_DASH_TOKENS, or bind 127.0.0.1."
            )

    def check_files(self) -> None:
        """``--files`` is unset or ``s3://bucket[/prefix]`` (then boto3 must be installed); ``--s3-endpoint`` an URL."""
        if self.files is not None:
            parse_s3_url(self.files)
        if self.s3_endpoint is not None:
            if self.files is None:
                raise ConfigError("--s3-endpoint (ML_DASH_S3_ENDPOINT) is only used with --files s3://bucket/prefix")
            if not re.fullmatch(r"https?://[^/\s]+(/\S*)?", self.s3_endpoint):
                raise ConfigError(f"--s3-endpoint must be an http:// or https:// URL such as http://minio:9000, "
                                  f"got {self.s3_endpoint!r}")
        if self.files is not None and importlib.util.find_spec("boto3") is None:
            raise ConfigError(f"--files {self.files} needs boto3: pip install boto3")


# S3 and its usual clones: 3-63 characters, letters, digits, '.', '-' (and '_' for older buckets).
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,61}[A-Za-z0-9]")


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` → ``("bucket", "some/prefix")`` (prefix may be empty) or ``ConfigError``."""
    scheme, sep, rest = url.partition("://")
    bucket, _, prefix = rest.partition("/")
    segments = [s for s in prefix.split("/") if s]
    if (not sep or scheme.lower() != "s3" or not _BUCKET.fullmatch(bucket) or any(s in (".", "..") for s in segments)
            or any(c in url for c in "\x00\\?#") or any(c.isspace() for c in url)):
        raise ConfigError(f"--files (ML_DASH_FILES) must be s3://bucket or s3://bucket/prefix (or unset: files under "
                          f"--data), got {url!r}")
    return bucket, "/".join(segments)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a hostname or "0.0.0.0"-like wildcard we cannot vouch for


def parse_token_entry(entry: str) -> tuple[str, frozenset[str] | None]:
    """``TOKEN`` grants every namespace; ``TOKEN=ns1,ns2`` limits the token to those namespaces.

    Split at the last ``=``: a token may contain ``=`` itself (base64 padding, ``abc==``), and namespace names never
    do. An entry ending in ``=`` is a plain token, not a token limited to nothing.
    """
    token, sep, namespaces = entry.strip().rpartition("=")
    if not sep or not namespaces.strip():
        token = entry.strip()
        if not token:
            raise ConfigError(f"empty token in {entry!r}")
        return token, None
    if not token:
        raise ConfigError(f"empty token in {entry!r}")
    allowed = frozenset(ns.strip() for ns in namespaces.split(",") if ns.strip())
    if not allowed:
        raise ConfigError(f"token entry {entry!r} names no namespace after '='")
    return token, allowed


def _token_entries(tokens: Iterable[str] | None, tokens_file: str | None) -> list[str]:
    entries = list(tokens or [])
    tokens_file = TOKENS_FILE.get(tokens_file)
    if tokens_file:
        with open(tokens_file, encoding="utf-8") as f:
            for line in f:
                line = line.split("#", 1)[0].strip()
                if line:
                    entries.append(line)
    # ML_DASH_TOKENS adds to (never replaces) the command line: whitespace-separated entries.
    entries.extend(TOKENS.get().split())
    return entries
