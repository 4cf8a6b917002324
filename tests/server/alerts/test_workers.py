"""With several workers (``ml-dash server --workers 2``) each alert is sent once: the database dedupes the alert and
each delivery is claimed by one worker."""
from __future__ import annotations

import asyncio

import aiohttp
import msgpack

from ml_dash.server.testing import running_server
from tests.server.alerts.conftest import CREATE
from tests.server.conftest import metric_batch


async def test_two_workers_send_one_alert(tmp_path, db_url, receiver):
    with running_server(tmp_path / "data", workers=2, db=db_url,
                        args=["--alert-webhook-allow", "127.0.0.1/32"]) as base:
        rule = {"namespace": "alice", "kind": "nonfinite", "webhook": {"url": receiver.url}}
        async with aiohttp.ClientSession() as http:
            async def call(method, path, headers=None, **kwargs):
                # A new connection each time, so SO_REUSEPORT spreads the requests over both workers.
                headers = {**(headers or {}), "Connection": "close"}
                async with http.request(method, base + path, headers=headers, **kwargs) as answer:
                    assert answer.status == 200, await answer.text()
                    return await answer.json()

            made = await call("POST", "/graphql", json={"query": CREATE, "variables": {"rule": rule}})
            assert "errors" not in made, made
            experiment_id = (await call("POST", "/api/v1/experiments", json={
                "namespace": "alice", "workspace": "w", "prefix": "p"}))["experiment_id"]
            # Several streams of the same run carry NaNs for "loss": whichever workers see them, one alert opens.
            for stream in range(8):
                batch = metric_batch(0, 2, range(2), stream_id=f"s{stream}", value=lambda s: float("nan"))
                await call("POST", f"/api/v1/experiments/{experiment_id}/batches", data=msgpack.packb(batch),
                           headers={"Content-Type": "application/msgpack"})
            fired = await receiver.next(timeout=30)
            assert fired["json"]["event"] == "fired"
            query = "{ alerts { id deliveries attempts } }"
            while True:  # until the delivery's single attempt is recorded (the receiver answered already)
                [alert] = (await call("POST", "/graphql", json={"query": query}))["data"]["alerts"]
                if alert["deliveries"][0]["status"] == "sent":
                    break
                await asyncio.sleep(0.05)  # polling another process's state; nothing timed
    assert [d["attempts"] for d in alert["deliveries"]] == [1] and len(alert["attempts"]) == 1
    assert receiver.hits == 1


async def test_one_alert_and_one_claim_between_two_storages(storage_factory):
    """Two processes' storages on one database: the same condition opens one alert, and of two claims made at
    once only one gets its delivery."""
    first, second = storage_factory(), storage_factory()
    await first.open()
    await second.open()
    try:
        await first.create_alert_rule({"namespace": "alice", "name": "n", "kind": "nonfinite",
                                       "params": {"metric": "*"}, "level": "ERROR",
                                       "webhook_url": "https://hooks.example.com/x", "webhook_format": "generic",
                                       "cooldown": 0.0})
        [rule] = await first.alert_rules()
        opened = await asyncio.gather(*(s.open_alert(rule["pk"], "alice", "e1", "r1", "loss", "ERROR", "t", None,
                                                     False, 100.0) for s in (first, second, first, second)))
        assert sum(a is not None for a in opened) == 1
        claims = await asyncio.gather(first.claim_deliveries(200.0, 30.0, 10), second.claim_deliveries(200.0, 30.0, 10))
        assert sorted(len(c) for c in claims) == [0, 1]
        assert await first.claim_deliveries(210.0, 30.0, 10) == []  # leased: not claimable until the lease ends
        assert len(await second.claim_deliveries(231.0, 30.0, 10)) == 1  # a dead worker's claim expires
    finally:
        await first.close()
        await second.close()
