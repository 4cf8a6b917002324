"""Server configuration: every setting resolves as argument → ``ML_DASH_<NAME>`` environment variable → default."""
from __future__ import annotations

import importlib.util
import ipaddress
import os
import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from ml_dash.settings import setting
from ml_dash.format.limits import MAX_NAME_LENGTH

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_DATA_DIR = "./ml-dash-data"

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
    body_timeout: float = 30.0  # seconds for a whole request body (batch, run, experiment); file uploads: see below
    body_idle_timeout: float = 10.0  # seconds without a byte of body before 408 (file uploads too)
    file_body_timeout: float = 3600.0  # seconds for a whole file upload (16 GiB at 5 MB/s is ~1 h)
    workers: int = 1  # processes serving one port (SO_REUSEPORT); see _workers
    files: str | None = None  # None: blobs under data_dir; "s3://bucket/prefix": an S3-compatible store (_s3_files)
    s3_endpoint: str | None = None  # e.g. http://minio:9000; None: AWS S3 (region etc. from boto3's own chain)
    chart_js: str | None = None  # a plotly.js bundle to serve; None: the basic bundle if fetched, else plotly's full one
    allowed_hosts: tuple[str, ...] = ()  # Host names answered besides localhost/127.0.0.1/[::1] (http/security.py)
    # Processes that decode large batch bodies (ingest_pool.py); None: half the cores from 4 on (at most 4), else 0;
    # 0: a thread.
    ingest_processes: int | None = None
    # Seconds a batch sent ahead waits for the batch before it (http/batch_order.py) before its 409 stands.
    order_wait: float = 10.0
    # Seconds a read may run in the database before it is stopped (503): PostgreSQL's statement_timeout, SQLite's
    # progress handler. A heavy filter over many experiments cannot hold a connection or a reader thread longer.
    query_timeout: float = 30.0

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
        **limits: int,
    ) -> "ServerConfig":
        """Build a config from explicit arguments, falling back to ``ML_DASH_*`` variables and defaults."""
        table: dict[str, frozenset[str] | None] = {}
        for entry in _token_entries(tokens, tokens_file):
            token, namespaces = parse_token_entry(entry)
            table[token] = namespaces
        config = cls(
            host=setting("HOST", host, DEFAULT_HOST),
            port=setting("PORT", port, DEFAULT_PORT, int),
            data_dir=setting("DATA", data_dir, DEFAULT_DATA_DIR),
            db_url=setting("DB", db_url, None),
            tokens=table,
            workers=setting("WORKERS", workers, 1, int),
            files=setting("FILES", files, None),
            s3_endpoint=setting("S3_ENDPOINT", s3_endpoint, None),
            chart_js=setting("CHART_JS", chart_js, None),
            body_timeout=setting("BODY_TIMEOUT", body_timeout, 30.0, float),
            body_idle_timeout=setting("BODY_IDLE_TIMEOUT", body_idle_timeout, 10.0, float),
            allowed_hosts=tuple(allowed_hosts if allowed_hosts is not None else
                                setting("ALLOWED_HOSTS", None, "").replace(",", " ").split()),
            ingest_processes=setting("INGEST_PROCESSES", ingest_processes, None, int),
            query_timeout=setting("QUERY_TIMEOUT", limits.pop("query_timeout", None), 30.0, float),
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
        if not self.query_timeout > 0:
            raise ConfigError(f"ML_DASH_QUERY_TIMEOUT must be positive seconds, got {self.query_timeout}")
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
            raise ConfigError(f"--files {self.files} needs boto3: pip install 'ml-dash[s3]'")


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
    tokens_file = setting("TOKENS_FILE", tokens_file, None)
    if tokens_file:
        with open(tokens_file, encoding="utf-8") as f:
            for line in f:
                line = line.split("#", 1)[0].strip()
                if line:
                    entries.append(line)
    # ML_DASH_TOKENS adds to (never replaces) the command line: whitespace-separated entries.
    entries.extend(os.environ.get("ML_DASH_TOKENS", "").split())
    return entries
