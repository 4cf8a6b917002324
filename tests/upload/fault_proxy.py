"""A fault-injecting HTTP proxy for tests: forwards to a real server, but on a seeded fraction of requests answers
500/429/503 (with ``Retry-After``), cuts the connection before forwarding, or forwards and then cuts the connection so
the server applied the request but the client never hears the answer (the case only idempotency can save)."""
from __future__ import annotations

import asyncio
import collections
import random
import threading
import time

import aiohttp
import msgpack
from aiohttp import web

FAULTS = ("500", "429", "503", "cut_before", "cut_after")
# Not Content-Encoding: aiohttp has already inflated a gzip body when the proxy reads it.
_FORWARDED_HEADERS = ("Content-Type", "Authorization", "Accept")


class FaultProxy:
    def __init__(self, upstream: str, fault_rate: float = 0.3, faults=FAULTS, retry_after: str = "0.05",
                 seed: int = 1234, stall_after: int | None = None, batch_fault=None, hold=None,
                 hold_answer=None, answered=None) -> None:
        self.upstream = upstream.rstrip("/")
        self.fault_rate = fault_rate
        self.faults = tuple(faults)
        self.retry_after = retry_after
        self.stall_after = stall_after  # after this many requests, hold every further request unanswered
        self.rng = random.Random(seed)
        self.injected: collections.Counter = collections.Counter()
        self.log: list[tuple[float, str, str, str]] = []  # (monotonic time, method, path, outcome)
        self.encodings: collections.Counter = collections.Counter()  # Content-Encoding of request bodies ("" = none)
        # Batches: (monotonic time, stream, start, ahead, outcome), and their answers' statuses from upstream.
        self.batches: list[tuple[float, str, int, bool, str]] = []
        self.batch_statuses: collections.Counter = collections.Counter()
        self.in_flight = 0  # batch requests being forwarded right now, and the most there ever were
        self.max_in_flight = 0
        # batch_fault(batch, attempt) -> a fault name or None: a fault for chosen batches ((stream, start), and
        # how many times this range was seen before); hold(batch) -> an awaitable to wait on before forwarding.
        self.batch_fault = batch_fault
        self.hold = hold
        # hold_answer(batch): awaited after the server answered, before the answer goes back; answered(batch): called
        # once a batch's answer has been written to the client.
        self.hold_answer = hold_answer
        self.answered = answered
        self._attempts: collections.Counter = collections.Counter()
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._stall = None
        self.stalled = threading.Event()  # set once a request is being held (the client is mid-upload)

    def __enter__(self) -> "FaultProxy":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession()
        self._stall = asyncio.Event()
        app = web.Application(client_max_size=64 << 20)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def _stop(self) -> None:
        self._stall.set()
        await self._runner.cleanup()
        await self._session.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if body:
            self.encodings[request.headers.get("Content-Encoding", "")] += 1
        count = len(self.log)
        if self.stall_after is not None and count >= self.stall_after:
            self.log.append((time.monotonic(), request.method, request.path, "stalled"))
            self.stalled.set()
            await self._stall.wait()
            raise ConnectionResetError("proxy stopped")
        fault = self.rng.choice(self.faults) if self.rng.random() < self.fault_rate else None
        batch = None
        if request.method == "POST" and request.path.endswith("/batches") and body:
            decoded = msgpack.unpackb(body)
            batch = (decoded["stream"], decoded["start"], decoded.get("ahead") is True)
            attempt = self._attempts[batch[:2]]
            self._attempts[batch[:2]] += 1
            if self.batch_fault is not None:
                fault = self.batch_fault(batch, attempt) or fault
            self.batches.append((time.monotonic(), *batch, fault or "ok"))
        self.log.append((time.monotonic(), request.method, request.path, fault or "ok"))
        if fault:
            self.injected[fault] += 1
        if fault in ("500", "429", "503"):
            headers = {"Retry-After": self.retry_after} if fault != "500" else {}
            return web.json_response({"error": f"injected {fault}"}, status=int(fault), headers=headers)
        if fault == "cut_before":
            request.transport.close()
            return web.Response()
        headers = {k: request.headers[k] for k in _FORWARDED_HEADERS if k in request.headers}
        if batch is not None and self.hold is not None:
            await self.hold(batch)
        self.in_flight += batch is not None
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            async with self._session.request(request.method, self.upstream + request.path_qs, data=body,
                                             headers=headers) as answer:
                payload = await answer.read()
                status, content_type = answer.status, answer.headers.get("Content-Type", "application/json")
        finally:
            self.in_flight -= batch is not None
        if batch is not None:
            self.batch_statuses[status] += 1
            if self.hold_answer is not None:
                await self.hold_answer(batch)
        if fault == "cut_after":
            request.transport.close()
            return web.Response()
        response = web.Response(status=status, body=payload, headers={"Content-Type": content_type})
        if batch is not None and self.answered is not None:
            await response.prepare(request)
            await response.write_eof()
            self.answered(batch)
        return response

    def release(self) -> None:
        """Stop stalling: the held requests fail (their connections are reset), later ones pass."""
        self.stall_after = None
        self._loop.call_soon_threadsafe(self._stall.set)
