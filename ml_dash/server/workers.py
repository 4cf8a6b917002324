"""``ml-dash server --workers N``: N server processes on one port, started and stopped by a small parent.

Each worker is an ordinary aiohttp server (its own event loop, storage connections and blob store over the shared
data directory) bound with ``SO_REUSEPORT``, so the kernel spreads incoming connections over the workers. Workers keep
no state that matters between requests: idempotent ingest, create-or-get and run creation are enforced by the
database. Use PostgreSQL for teams; SQLite works with several workers too (WAL, busy timeout) but has one writer.

The parent:

- applies the schema migrations once before forking, so the workers find the database ready;
- holds a bound (not listening) ``SO_REUSEPORT`` socket on the port for its whole life, which reserves the port and
  resolves ``--port 0`` to one port all workers share;
- puts the workers in their own process group and forwards SIGTERM/SIGINT to them as SIGTERM (a terminal's Ctrl-C
  reaches only the parent, so each worker is stopped once, gracefully), waits, and kills stragglers after a grace time;
- stops everything and exits 1 when a worker dies on its own (a supervisor such as systemd restarts the whole set).

Every answer carries ``X-ML-Dash-Worker: <pid>`` so tests and operators can see which worker served it.
"""
from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import time

from ml_dash.server.config import SHUTDOWN_TIMEOUT_S, ServerConfig

WORKER_HEADER = "X-ML-Dash-Worker"
STOP_GRACE_S = 10.0

log = logging.getLogger("ml_dash.server.workers")


def serve_workers(config: ServerConfig, banner: str = "") -> int:
    """Run ``config.workers`` worker processes until SIGTERM/SIGINT; return the exit status."""
    asyncio.run(_migrate(config))
    reserved = _reserve_port(config.host, config.port)
    port = reserved.getsockname()[1]
    context = multiprocessing.get_context("fork")  # the parent has no threads or loop here; fork is quick
    workers = [context.Process(target=_worker_main, args=(config, port, reserved.fileno()), name=f"ml-dash-worker-{i}",
                               daemon=False) for i in range(config.workers)]
    stopping: list[int] = []

    def stop(signum: int, _frame) -> None:
        if not stopping:
            log.info("received %s: stopping %d workers", signal.Signals(signum).name, len(workers))
        stopping.append(signum)
        for worker in workers:
            if worker.pid is not None and worker.exitcode is None:
                try:
                    os.kill(worker.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for worker in workers:
            worker.start()
        pids = ", ".join(str(w.pid) for w in workers)
        print(f"======== Running on http://{_url_host(config.host)}:{port} with {len(workers)} workers "
              f"(pids {pids}) ======== {banner}".rstrip(), flush=True)
        return _supervise(workers, stopping, stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        reserved.close()


def _supervise(workers, stopping: list[int], stop) -> int:
    failed = 0
    deadline = None
    while any(w.exitcode is None for w in workers):
        multiprocessing.connection.wait([w.sentinel for w in workers if w.exitcode is None], timeout=0.5)
        for worker in workers:
            if worker.exitcode is not None and not stopping and not failed:
                failed = 1
                log.error("worker %s (pid %s) exited with %s: stopping the others", worker.name, worker.pid,
                          worker.exitcode)
                stop(signal.SIGTERM, None)
        if stopping and deadline is None:
            deadline = time.monotonic() + STOP_GRACE_S
        if deadline is not None and time.monotonic() > deadline:
            for worker in workers:
                if worker.exitcode is None:
                    log.warning("worker pid %s did not stop within %.0f s: killing it", worker.pid, STOP_GRACE_S)
                    worker.kill()
            deadline = float("inf")
    for worker in workers:
        worker.join()
    return failed


async def _migrate(config: ServerConfig) -> None:
    """Create or migrate the schema once, before any worker opens the database."""
    from ml_dash.server.storage.registry import open_storage

    storage = open_storage(config.db_url, config.sqlite_path)
    os.makedirs(config.data_dir, exist_ok=True)
    await storage.open()
    await storage.close()


def _reserve_port(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))  # never listens: only listening sockets of a reuseport group get connections
    except BaseException:
        sock.close()
        raise
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _worker_main(config: ServerConfig, port: int, reserved_fd: int) -> None:
    from aiohttp import web

    from ml_dash.server.http.app import create_app

    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's forwarding handler, inherited by fork
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.close(reserved_fd)  # the parent's reservation; this worker binds its own listening socket
    os.setpgid(0, 0)  # out of the terminal's process group: Ctrl-C reaches the parent, which stops us once
    _die_with_parent()
    pid = str(os.getpid())

    async def tag(request: web.Request, response: web.StreamResponse) -> None:
        response.headers[WORKER_HEADER] = pid

    app = create_app(config)
    app.on_response_prepare.append(tag)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s %(levelname)s %(name)s[{pid}]: %(message)s")
    web.run_app(app, host=config.host, port=port, reuse_port=True, access_log=None, print=None,
                shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    sys.exit(0)


def _die_with_parent() -> None:
    """Linux: get SIGTERM when the parent dies (even by SIGKILL), so no worker outlives its supervisor."""
    parent = os.getppid()
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)
