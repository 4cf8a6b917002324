"""Against a real ``python -m ml_dash.server`` subprocess on a free loopback port."""
from __future__ import annotations

import asyncio
import math

import aiohttp
import msgpack
import pytest

from ml_dash.server.testing import running_server

from ..conftest import MSGPACK, metric_batch


async def create(session: aiohttp.ClientSession, base: str, prefix: str) -> tuple[str, str]:
    async with session.post(f"{base}/api/v1/experiments",
                            json={"namespace": "live", "workspace": "w", "prefix": prefix}) as answer:
        experiment_id = (await answer.json())["experiment_id"]
    async with session.post(f"{base}/api/v1/experiments/{experiment_id}/runs", json={"client_run_id": "r"}) as answer:
        return experiment_id, (await answer.json())["run_id"]


async def send(session, base, experiment_id, batch) -> tuple[int, dict]:
    async with session.post(f"{base}/api/v1/experiments/{experiment_id}/batches", data=msgpack.packb(batch),
                            headers=MSGPACK) as answer:
        return answer.status, await answer.json()


async def test_replay_gap_and_status_over_http(live_server):
    """Replays are duplicates, gaps are 409, and run status updates reach the experiment."""
    async with aiohttp.ClientSession() as session:
        experiment_id, run_id = await create(session, live_server, "replay")
        batch = metric_batch(0, 64, range(100), run_id=run_id)
        assert await send(session, live_server, experiment_id, batch) == (200, {"acked": 64, "stored": 100})
        assert (await send(session, live_server, experiment_id, batch))[1]["duplicate"] is True
        status, body = await send(session, live_server, experiment_id, metric_batch(100, 164, range(5), run_id=run_id))
        assert (status, body["acked"]) == (409, 64)
        async with session.patch(f"{live_server}/api/v1/runs/{run_id}", json={"status": "COMPLETED"}) as answer:
            assert answer.status == 200
        async with session.get(f"{live_server}/api/v1/experiments/{experiment_id}") as answer:
            record = await answer.json()
        assert record["status"] == "COMPLETED" and record["last_metrics"] == {"loss": 49.5}


async def test_concurrent_clients_on_distinct_streams_all_land(live_server):
    """Several sessions sending interleaved batches concurrently: every point lands exactly once."""
    async with aiohttp.ClientSession() as setup:
        experiment_id, run_id = await create(setup, live_server, "concurrent")

    async def client(n: int) -> None:
        async with aiohttp.ClientSession() as session:
            for k in range(10):
                batch = metric_batch(k * 10, (k + 1) * 10, range(k * 50, (k + 1) * 50), stream_id=f"client{n}",
                                     run_id=run_id, name=f"m{n}")
                status, _ = await send(session, live_server, experiment_id, batch)
                assert status == 200

    await asyncio.gather(*(client(n) for n in range(6)))
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{live_server}/api/v1/experiments/{experiment_id}/streams") as answer:
            assert (await answer.json())["streams"] == {f"client{n}": 100 for n in range(6)}
        for n in range(6):
            async with session.get(f"{live_server}/api/v1/experiments/{experiment_id}/metrics/m{n}") as answer:
                assert (await answer.json())["steps"] == list(range(500))


async def test_malformed_and_oversize_input_over_http(live_server):
    """Garbage is 400 and a body over the 32 MiB default is 413, and the server keeps serving."""
    async with aiohttp.ClientSession() as session:
        experiment_id, _ = await create(session, live_server, "bad")
        url = f"{live_server}/api/v1/experiments/{experiment_id}/batches"
        async with session.post(url, data=b"\xc1garbage", headers=MSGPACK) as answer:
            assert answer.status == 400
        async with session.post(url, data=b"\x00" * (33 * 1024 * 1024), headers=MSGPACK) as answer:
            assert answer.status == 413
        async with session.get(f"{live_server}/health") as answer:
            assert answer.status == 200


async def test_files_round_trip_and_raw_path_escape(live_server):
    """Files round-trip; a literal '..' sent on a raw socket never reaches outside the blob store."""
    async with aiohttp.ClientSession() as session:
        experiment_id, _ = await create(session, live_server, "files")
        url = f"{live_server}/api/v1/experiments/{experiment_id}/files/out/weights.bin"
        async with session.put(url, data=b"\x01\x02" * 50_000) as answer:
            assert (await answer.json())["size"] == 100_000
        async with session.get(url) as answer:
            assert await answer.read() == b"\x01\x02" * 50_000
    host, port = live_server.removeprefix("http://").split(":")
    for path in ("files/../../../../etc/passwd", "files/..%2F..%2F..%2Fetc%2Fpasswd", "files/%2e%2e/%2e%2e/x"):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"GET /api/v1/experiments/{experiment_id}/{path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Connection: close\r\n\r\n".encode())
        await writer.drain()
        response = await reader.read()
        writer.close()
        status = int(response.split(b" ", 2)[1])
        assert status in (400, 404) and b"root:" not in response, response[:200]


async def test_graphql_downsampling_keeps_spike_over_http(live_server):
    """A 20k-point series downsampled to 100 buckets still shows its one spike; a lone NaN never hides it."""
    async with aiohttp.ClientSession() as session:
        experiment_id, run_id = await create(session, live_server, "spike")
        batch = metric_batch(0, 1, range(20_000), run_id=run_id,
                             value=lambda s: 1000.0 if s == 12_345 else (math.nan if s == 5 else 0.0))
        assert (await send(session, live_server, experiment_id, batch))[0] == 200
        query = """query($id: ID!) { experiment(id: $id) { status metric(name: "loss", maxPoints: 100) {
                   count steps values max } } }"""
        async with session.post(f"{live_server}/graphql", json={"query": query, "variables": {"id": experiment_id}}) as a:
            experiment = (await a.json())["data"]["experiment"]
    metric = experiment["metric"]
    assert experiment["status"] == "RUNNING" and metric["count"] == 20_000 and len(metric["steps"]) <= 200
    assert 12_345 in metric["steps"] and metric["max"] == 1000.0


@pytest.fixture(scope="module")
def live_server_with_tokens(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("auth-data"), tokens=["root", "al=alice"]) as base_url:
        yield base_url


async def test_auth_on_a_real_server(live_server_with_tokens):
    """A token-protected server: 401 without a token, 403 outside the token's namespace, 200 inside."""
    base = live_server_with_tokens
    body = {"namespace": "bob", "workspace": "w", "prefix": "p"}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/api/v1/experiments", json=body) as answer:
            assert answer.status == 401
        async with session.post(f"{base}/api/v1/experiments", json=body, headers={"Authorization": "Bearer al"}) as a:
            assert a.status == 403
        async with session.post(f"{base}/api/v1/experiments", json={**body, "namespace": "alice"},
                                headers={"Authorization": "Bearer al"}) as answer:
            assert answer.status == 200
