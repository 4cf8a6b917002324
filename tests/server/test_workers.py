"""A real ``ml-dash server --workers N`` (subprocess) with several clients: exactly-once across workers.

Every request uses a fresh TCP connection, so the kernel's SO_REUSEPORT hashing spreads requests (and their replays)
over the workers; the ``X-ML-Dash-Worker`` header proves more than one worker answered.
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess

import aiohttp
import msgpack
import pytest

from ml_dash.server.testing import server_process

from .conftest import POSTGRES_URL, postgres_schema_url

MSGPACK = {"Content-Type": "application/msgpack"}
CLIENTS, BATCHES, POINTS = 4, 12, 50


def workers_server(data_dir, db_url: str | None, workers: int = 2):
    return server_process(data_dir, db=db_url, workers=workers)


@pytest.fixture(params=["postgresql", "sqlite"])
def server(request, tmp_path):
    if request.param == "postgresql":
        if not POSTGRES_URL:
            pytest.skip("PostgreSQL tests need ML_DASH_TEST_POSTGRES=postgresql://... (see scripts/services.sh)")
        with postgres_schema_url() as url, workers_server(tmp_path / "data", url, workers=2) as running:
            yield running
    else:  # several workers on SQLite work too (WAL, busy timeout); PostgreSQL is what teams should use
        with workers_server(tmp_path / "data", None, workers=2) as running:
            yield running


async def call(method: str, url: str, seen: set, **kwargs) -> tuple[int, dict]:
    """One request on its own TCP connection (force_close), recording which worker answered."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        async with session.request(method, url, **kwargs) as answer:
            seen.add(answer.headers["X-ML-Dash-Worker"])
            return answer.status, await answer.json()


def batch(client: int, index: int, run_id: str) -> bytes:
    steps = range(index * POINTS, (index + 1) * POINTS)
    return msgpack.packb({"run_id": run_id, "stream": "metrics", "stream_id": f"c{client}:metrics",
                          "start": index * 1000, "end": (index + 1) * 1000,
                          "events": [{"timestamp": 1.0 + s, "step": s, "metrics": {f"m{client}": s * 0.5, "shared": 1.0}}
                                     for s in steps]})


async def test_exactly_once_across_workers(server):
    base, _ = server
    seen: set[str] = set()
    body = {"namespace": "team", "workspace": "w", "prefix": "workers"}
    # Create-or-get and run creation raced from many connections land on one experiment and one run.
    created = await asyncio.gather(*(call("POST", f"{base}/api/v1/experiments", seen, json=body) for _ in range(6)))
    assert {status for status, _ in created} == {200}
    assert len({answer["experiment_id"] for _, answer in created}) == 1
    assert sum(answer["created"] for _, answer in created) == 1
    experiment_id = created[0][1]["experiment_id"]
    runs = await asyncio.gather(*(call("POST", f"{base}/api/v1/experiments/{experiment_id}/runs", seen,
                                       json={"client_run_id": "r1"}) for _ in range(6)))
    assert len({answer["run_id"] for _, answer in runs}) == 1
    run_id = runs[0][1]["run_id"]
    url = f"{base}/api/v1/experiments/{experiment_id}/batches"

    async def client(n: int) -> list[int]:
        stored = []
        for index in range(BATCHES):
            data = batch(n, index, run_id)
            if index % 3 == 0:  # the same batch twice at once: on two connections, likely two workers
                answers = await asyncio.gather(call("POST", url, seen, data=data, headers=MSGPACK),
                                               call("POST", url, seen, data=data, headers=MSGPACK))
            else:  # sent, then replayed on a fresh connection (a client retry after a lost answer)
                answers = [await call("POST", url, seen, data=data, headers=MSGPACK)]
                answers.append(await call("POST", url, seen, data=data, headers=MSGPACK))
            assert [status for status, _ in answers] == [200, 200], answers
            assert sorted(bool(a.get("duplicate")) for _, a in answers) == [False, True], answers
            stored += [a["stored"] for _, a in answers]
        # A gap is refused with the acked offset, whichever worker answers.
        status, answer = await call("POST", url, seen, data=batch(n, BATCHES + 1, run_id), headers=MSGPACK)
        assert (status, answer["acked"]) == (409, BATCHES * 1000)
        return stored

    stored = await asyncio.gather(*(client(n) for n in range(CLIENTS)))
    assert all(sum(s) == BATCHES * POINTS for s in stored)
    status, answer = await call("GET", f"{base}/api/v1/experiments/{experiment_id}/streams", seen)
    assert answer["streams"] == {f"c{n}:metrics": BATCHES * 1000 for n in range(CLIENTS)}
    for n in range(CLIENTS):
        status, series = await call("GET", f"{base}/api/v1/experiments/{experiment_id}/metrics/m{n}", seen)
        assert series["count"] == BATCHES * POINTS
        assert series["steps"] == list(range(BATCHES * POINTS))
    status, series = await call("GET", f"{base}/api/v1/experiments/{experiment_id}/metrics/shared", seen)
    assert series["count"] == CLIENTS * BATCHES * POINTS
    assert len(seen) >= 2, f"only worker(s) {seen} answered; SO_REUSEPORT did not spread connections"


def test_sigterm_stops_every_worker(tmp_path):
    """SIGTERM to the parent stops all workers gracefully and the parent exits 0."""
    with workers_server(tmp_path / "data", None, workers=2) as (base, process):
        seen: set[str] = set()
        for _ in range(20):
            asyncio.run(call("GET", f"{base}/api/v1/experiments", seen))
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    for pid in seen:
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid), 0)


def test_workers_setting_resolves_from_flag_and_environment(monkeypatch):
    from ml_dash.server.config import ConfigError, ServerConfig

    monkeypatch.setenv("ML_DASH_WORKERS", "3")
    assert ServerConfig.resolve().workers == 3
    assert ServerConfig.resolve(workers=2).workers == 2
    with pytest.raises(ConfigError, match="workers"):
        ServerConfig.resolve(workers=0)
