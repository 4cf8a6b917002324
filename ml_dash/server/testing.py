"""Start a real ml-dash server subprocess for tests: ``with running_server(tmp_path) as base_url: ...``."""
from __future__ import annotations

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
