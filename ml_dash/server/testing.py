"""Start a real ml-dash server subprocess for tests: ``with running_server(tmp_path) as base_url: ...``; several
of them as separate hosts on one database (``running_hosts``) behind a round-robin load balancer
(``RoundRobinProxy``)."""
from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from typing import Iterable, Iterator

STARTUP_TIMEOUT_S = 30.0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_server(data_dir: str | os.PathLike, port: int | None = None,
                   tokens: Iterable[str] | None = None, host: str = "127.0.0.1", workers: int = 1,
                   db: str | None = None, args: Iterable[str] = ()) -> Iterator[str]:
    """Run ``python -m ml_dash.server`` on ``host:port`` (a free port by default); yield its base URL; stop it.

    ``tokens`` entries are ``TOKEN`` or ``TOKEN=ns1,ns2``; ``args`` are more command-line flags (``["--files", URL]``).
    Waits until ``/health`` answers, so the server is ready when the body starts; raises ``RuntimeError`` with the
    server's output if it exits or never answers.
    """
    with server_process(data_dir, port, tokens, host, workers, db, args) as (base_url, _process):
        yield base_url


@contextlib.contextmanager
def server_process(data_dir: str | os.PathLike, port: int | None = None, tokens: Iterable[str] | None = None,
                   host: str = "127.0.0.1", workers: int = 1,
                   db: str | None = None, args: Iterable[str] = ()) -> Iterator[tuple[str, subprocess.Popen]]:
    """``running_server``, also yielding the process (for tests that signal it)."""
    port = port or free_port(host)
    command = [sys.executable, "-m", "ml_dash.server", "--host", host, "--port", str(port), "--data", str(data_dir),
               "--workers", str(workers)] + (["--db", db] if db else [])
    for token in tokens or ():
        command += ["--token", token]
    command += list(args)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ML_DASH_", "ML_LOGGER_"))}
    # Output goes to a file, not a pipe: nobody drains a pipe while the tests run, and a full one would block the server.
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    base_url = f"http://{host}:{port}"
    try:
        _wait_until_ready(process, base_url, log)
        yield base_url, process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def _wait_until_ready(process: subprocess.Popen, base_url: str, log) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            output = log.read().decode(errors="replace")
            raise RuntimeError(f"ml-dash server exited with code {process.returncode}:\n{output}")
        try:
            with urllib.request.urlopen(base_url + "/health", timeout=1) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.05)  # polling for readiness only; nothing is asserted about timing
    process.kill()
    raise RuntimeError(f"ml-dash server at {base_url} did not answer within {STARTUP_TIMEOUT_S} s")


# Hop-by-hop headers (RFC 9110 §7.6.1) and the framing the proxy sets itself; everything else is forwarded as is.
_NOT_FORWARDED = frozenset(h.lower() for h in ("Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
                                               "TE", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length"))


class RoundRobinProxy:
    """A load balancer for tests: an HTTP proxy on a free loopback port that sends each request to the next of
    ``upstreams`` in turn (``http://127.0.0.1:PORT`` base URLs), so consecutive requests of one client (batches of one
    stream included) land on different server hosts.

    It forwards faithfully: method, path and query, every end-to-end header (``Host``, ``Authorization``,
    ``Content-Encoding`` and the rest), and the body's bytes as they came (a gzip body is not inflated on the way);
    the answer's status, headers and bytes go back the same way. ``served`` counts requests per upstream and
    ``statuses`` counts (method, last path segment, status), e.g. ``statuses["POST", "batches", 409]``.

    ``with RoundRobinProxy([a, b]) as proxy: ... proxy.url``; it runs on its own thread and event loop."""

    def __init__(self, upstreams: Iterable[str]) -> None:
        import collections
        import threading

        self.upstreams = [u.rstrip("/") for u in upstreams]
        if not self.upstreams:
            raise ValueError("upstreams must name at least one server")
        self.served: collections.Counter = collections.Counter()
        self.statuses: collections.Counter = collections.Counter()
        self.url = ""
        self._turn = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="round-robin-proxy", daemon=True)

    def __enter__(self) -> "RoundRobinProxy":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(STARTUP_TIMEOUT_S)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(STARTUP_TIMEOUT_S)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(STARTUP_TIMEOUT_S)
        self._loop.close()

    async def _start(self) -> None:
        from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

        # auto_decompress=False on both sides: bodies travel as the bytes that were sent, Content-Encoding intact.
        # No cap on connections (aiohttp's default is 100): batches sent ahead wait at the server for their
        # predecessor, and a cap would queue that predecessor behind them (or /health behind both).
        self._session = ClientSession(auto_decompress=False, timeout=ClientTimeout(total=None),
                                      connector=TCPConnector(limit=0))
        app = web.Application(client_max_size=1 << 40)  # the servers behind it enforce their own limits
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, handle_signals=False, auto_decompress=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def _stop(self) -> None:
        await self._runner.cleanup()
        await self._session.close()

    async def _forward(self, request):
        from aiohttp import web
        from yarl import URL

        upstream = self.upstreams[self._turn % len(self.upstreams)]
        self._turn += 1
        self.served[upstream] += 1
        body = await request.read()
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED]
        # Nothing added on the way: the headers aiohttp would fill in are left out unless the client sent them.
        skip = [h for h in ("User-Agent", "Accept", "Accept-Encoding", "Content-Type") if h not in request.headers]
        async with self._session.request(request.method, URL(upstream + request.raw_path, encoded=True),
                                         data=body or None, headers=headers, allow_redirects=False,
                                         skip_auto_headers=skip) as answer:
            self.statuses[request.method, request.path.rstrip("/").rpartition("/")[2], answer.status] += 1
            response = web.StreamResponse(status=answer.status, reason=answer.reason, headers=[
                (k, v) for k, v in answer.headers.items() if k.lower() not in _NOT_FORWARDED])
            if answer.headers.get("Content-Length") is not None:
                response.content_length = int(answer.headers["Content-Length"])
            await response.prepare(request)
            async for chunk in answer.content.iter_chunked(1 << 16):
                await response.write(chunk)
            await response.write_eof()
            return response


@contextlib.contextmanager
def running_hosts(count: int, data_dir: str | os.PathLike, db: str, args: Iterable[str] = ()) -> Iterator[list[str]]:
    """``count`` single-worker servers, each on its own port and ``data_dir/host<i>`` (as if on separate machines),
    all on the database ``db`` (and whatever ``args`` share, e.g. ``["--files", "s3://bucket"]``); yields their
    base URLs. Put a ``RoundRobinProxy`` in front to spread a client's requests over them."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(running_server(os.path.join(data_dir, f"host{i}"), db=db, args=args))
               for i in range(count)]


@contextlib.contextmanager
def postgres_schema(url: str) -> Iterator[str]:
    """A fresh, empty schema in the PostgreSQL database ``url`` names, as a URL whose connections use it (what
    ``running_hosts`` takes as ``db``); dropped with everything in it afterwards."""
    import uuid

    import asyncpg

    schema = f"t_{uuid.uuid4().hex[:16]}"

    async def execute(sql: str) -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def run(sql: str) -> None:  # on a thread of its own: the caller may be inside a running event loop
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, execute(sql)).result()

    run(f"CREATE SCHEMA {schema}")
    try:
        yield f"{url}{'&' if '?' in url else '?'}search_path={schema}"
    finally:
        run(f"DROP SCHEMA {schema} CASCADE")
