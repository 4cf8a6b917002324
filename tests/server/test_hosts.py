"""Two server hosts on one PostgreSQL (``server_hosts`` in tests/conftest.py): each keeps its own series cache, and
neither ever answers from it what another host's write made stale. And the load balancer the tests put before them
(``RoundRobinProxy``) forwards requests as they are."""
from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import threading
import urllib.error
import urllib.request

import msgpack
from aiohttp import web

from ml_dash.server.testing import RoundRobinProxy


def call(base: str, method: str, path: str, body=None) -> dict:
    request = urllib.request.Request(base + path, method=method, data=None if body is None else msgpack.packb(body),
                                     headers={"Content-Type": "application/msgpack", "Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())


def graphql(base: str, query: str, **variables) -> dict:
    request = urllib.request.Request(base + "/graphql", data=json.dumps({"query": query, "variables": variables})
                                     .encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        found = json.loads(answer.read())
    assert "errors" not in found, found
    return found["data"]


class Stream:
    """A metrics stream written straight to a chosen host (offsets kept here, as a client keeps them)."""

    def __init__(self, base: str) -> None:
        self.id = call(base, "POST", "/api/v1/experiments", {"namespace": "ops", "workspace": "hosts",
                                                             "prefix": "stale"})["experiment_id"]
        self.offset = 0

    def write(self, base: str, steps: range, value=lambda s: 1.0 / (s + 1)) -> None:
        events = [{"timestamp": 1e9 + s, "step": s, "metrics": {"loss": value(s)}} for s in steps]
        end = self.offset + sum(len(json.dumps(e)) + 1 for e in events)
        answer = call(base, "POST", f"/api/v1/experiments/{self.id}/batches", {
            "run_id": None, "stream": "metrics", "stream_id": "c:metrics", "start": self.offset, "end": end,
            "events": events})
        assert answer["acked"] == end
        self.offset = end


CHART = """query($id: ID!) { experiment(id: $id) { lastMetrics
    chart: metric(name: "loss", maxPoints: 10) { count steps max } } }"""
FULL = """query($id: ID!) { experiment(id: $id) { full: metric(name: "loss") { count max } } }"""


def test_a_host_never_serves_its_cached_series_stale_after_another_host_wrote(server_hosts):
    """Write through host A, read through host B (which keeps the series' chart, then the series itself, in its
    caches), write through A again, read through B again: B sees every point, whichever of its read paths answers
    (GraphQL's chart built from block summaries, REST's full series, a step range), after a small batch merged into
    the newest chunk (deleted and written again under a new key) as after a big one that adds chunks."""
    (host_a, host_b), _proxy = server_hosts
    stream = Stream(host_a)
    metric = f"/api/v1/experiments/{stream.id}/metrics/loss"
    for first in range(0, 24_000, 4_000):  # 24k points: enough blocks for a 10-bucket chart from summaries
        stream.write(host_a, range(first, first + 4_000))
    steps = list(range(24_000))

    def check_chart(spike: float | None) -> None:
        found = graphql(host_b, CHART, id=stream.id)["experiment"]
        assert found["chart"]["count"] == len(steps)
        if spike is not None:
            assert found["chart"]["max"] == spike and steps[-1] in found["chart"]["steps"]  # the newest spike shows
            assert found["lastMetrics"]["loss"] == spike

    # Phase 1: B answers charts only (its downsampled-answer cache), as a dashboard of a big run does.
    check_chart(None)
    check_chart(None)
    writes = [(range(24_000, 24_010), 7.0), (range(24_010, 30_000), 9.0), (range(30_000, 30_001), 11.0),
              (range(30_001, 30_004), 13.0)]
    for extra, spike in writes[:2]:
        stream.write(host_a, extra, value=lambda s, extra=extra, spike=spike: spike if s == extra[-1] else 0.5)
        steps += list(extra)
        check_chart(spike)
    # Phase 2: B reads the whole series (its decoded-series cache), then A writes on.
    for _ in range(2):
        assert call(host_b, "GET", metric)["steps"] == steps
    for extra, spike in writes[2:]:
        stream.write(host_a, extra, value=lambda s, extra=extra, spike=spike: spike if s == extra[-1] else 0.5)
        steps += list(extra)
        assert call(host_b, "GET", metric)["steps"] == steps
        assert call(host_b, "GET", metric + f"?step_min={extra[0]}")["steps"] == list(extra)
        full = graphql(host_b, FULL, id=stream.id)["experiment"]["full"]
        assert full["count"] == len(steps) and full["max"] == spike
        check_chart(spike)


@contextlib.contextmanager
def echo_upstreams(count: int):
    """``count`` HTTP servers on loopback that answer 409 with what they received (method, path, headers, body as
    hex) and a header naming themselves; yields their URLs."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runners = []

    async def start(name: str) -> str:
        async def echo(request: web.Request) -> web.Response:
            body = await request.read()
            return web.json_response({"method": request.method, "path": request.raw_path, "body": body.hex(),
                                      "headers": dict(request.headers)}, status=409, headers={"X-Upstream": name})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", echo)
        runner = web.AppRunner(app, auto_decompress=False)  # the bytes as they came over the wire
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    try:
        yield [asyncio.run_coroutine_threadsafe(start(f"u{i}"), loop).result(10) for i in range(count)]
    finally:
        for runner in runners:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_the_round_robin_proxy_forwards_as_is_and_alternates():
    """Each request goes to the next upstream; its method, raw path and query, headers (Content-Encoding, Host,
    Authorization) and gzip body bytes arrive unchanged, and the answer's status, headers and body come back."""
    body = gzip.compress(b'{"a": 1}' * 100)
    with echo_upstreams(2) as upstreams, RoundRobinProxy(upstreams) as proxy:
        seen = []
        for _ in range(4):
            request = urllib.request.Request(proxy.url + "/api/v1/x%2Fy/batches?q=a%20b&z=1", data=body, method="PUT",
                                             headers={"Content-Encoding": "gzip", "Authorization": "Bearer t",
                                                      "Content-Type": "application/msgpack", "X-Custom": "1"})
            try:
                urllib.request.urlopen(request, timeout=30)
            except urllib.error.HTTPError as answer:
                assert answer.code == 409
                seen.append(answer.headers["X-Upstream"])
                echoed = json.loads(answer.read())
            assert echoed["method"] == "PUT" and echoed["path"] == "/api/v1/x%2Fy/batches?q=a%20b&z=1"
            assert bytes.fromhex(echoed["body"]) == body
            headers = echoed["headers"]
            assert headers["Content-Encoding"] == "gzip" and headers["Authorization"] == "Bearer t"
            assert headers["Content-Type"] == "application/msgpack" and headers["X-Custom"] == "1"
            assert headers["Host"] == proxy.url.removeprefix("http://") and "User-Agent" in headers
        assert seen == ["u0", "u1", "u0", "u1"]
        assert proxy.statuses == {("PUT", "batches", 409): 4}
