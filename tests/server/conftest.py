"""Fixtures for the server tests: storage backends, in-process app clients and a real server subprocess."""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import uuid
from typing import Any, Awaitable, Callable, Iterator

import msgpack
import pytest

from ml_dash.server import ServerConfig, create_app
from ml_dash.server.storage.base import Storage
from ml_dash.server.storage.registry import open_storage
from ml_dash.server.testing import running_server

# Every storage-backed test runs on SQLite and on PostgreSQL. PostgreSQL needs ML_DASH_TEST_POSTGRES (a database URL
# whose role may create schemas; scripts/services.sh prints it); without it those cases are skipped, saying why.
POSTGRES_URL = os.environ.get("ML_DASH_TEST_POSTGRES", "")
DB_URLS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    not POSTGRES_URL, reason="PostgreSQL tests need ML_DASH_TEST_POSTGRES=postgresql://... (see scripts/services.sh)"))]


def _postgres_admin(sql: str) -> None:
    """Run one statement on the test database from a plain thread (fixtures may be set up inside a running loop)."""
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


@contextlib.contextmanager
def postgres_schema_url() -> Iterator[str]:
    """A fresh, empty schema in the test database, as a URL whose connections use it; dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    _postgres_admin(f"CREATE SCHEMA {schema}")
    try:
        separator = "&" if "?" in POSTGRES_URL else "?"
        yield f"{POSTGRES_URL}{separator}search_path={schema}"
    finally:
        _postgres_admin(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=DB_URLS)
def db_url(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/ml-dash.sqlite3"
    else:
        with postgres_schema_url() as url:
            yield url


@pytest.fixture
def storage_factory(db_url, tmp_path) -> Callable[[], Storage]:
    return lambda **options: open_storage(db_url, str(tmp_path / "unused.sqlite3"), **options)


@pytest.fixture
async def storage(storage_factory):
    store = storage_factory()
    await store.open()
    yield store
    await store.close()


@pytest.fixture
def make_client(aiohttp_client, tmp_path, db_url) -> Callable[..., Awaitable[Any]]:
    """``await make_client(tokens={...}, max_events=...)`` → an aiohttp test client on a fresh app."""

    async def make(**overrides):
        config = ServerConfig(data_dir=str(tmp_path / "data"), db_url=db_url, **overrides)
        return await aiohttp_client(create_app(config))

    return make


@pytest.fixture
async def client(make_client):
    return await make_client()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory) -> str:
    """Base URL of a real ``python -m ml_dash.server`` on a free loopback port, shared by a module's tests."""
    with running_server(tmp_path_factory.mktemp("live-data")) as base_url:
        yield base_url


def packb(body: Any) -> bytes:
    return msgpack.packb(body)


MSGPACK = {"Content-Type": "application/msgpack"}


async def new_experiment(client, prefix: str = "exp", namespace: str = "alice", headers=None) -> str:
    answer = await client.post("/api/v1/experiments", json={"namespace": namespace, "workspace": "vision",
                                                            "prefix": prefix}, headers=headers)
    assert answer.status == 200, await answer.text()
    return (await answer.json())["experiment_id"]


async def new_run(client, experiment_id: str, client_run_id: str = "run-1", headers=None) -> str:
    answer = await client.post(f"/api/v1/experiments/{experiment_id}/runs", json={"client_run_id": client_run_id},
                               headers=headers)
    assert answer.status == 200, await answer.text()
    return (await answer.json())["run_id"]


def metric_batch(start: int, end: int, steps: range, stream_id: str = "c1:metrics", run_id=None, name="loss",
                 value=lambda step: step * 0.5) -> dict:
    return {"run_id": run_id, "stream": "metrics", "stream_id": stream_id, "start": start, "end": end,
            "events": [{"timestamp": 1000.0 + s, "step": s, "metrics": {name: value(s)}} for s in steps]}


async def post_batch(client, experiment_id: str, batch: dict, headers=None):
    return await client.post(f"/api/v1/experiments/{experiment_id}/batches", data=packb(batch),
                             headers={**MSGPACK, **(headers or {})})
