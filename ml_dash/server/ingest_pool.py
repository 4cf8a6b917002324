"""Large batch bodies decoded off the event loop: in a thread, or in a small pool of processes where cores are spare.

Decoding and validating a batch (msgpack, orjson's parse of its JSONL lines, ``ingest_columns``' pass, the numpy
chunks) costs about 1.5-2 µs of CPU per event, all of it holding the GIL: 40,000 events are ~80 ms. On the loop that
would stall ``/health`` and every other client for as long; in a thread the loop gets the GIL back between Python
bytecodes (orjson's parse of one body is the longest stretch, ~40 ms), but one server process never uses more than
one core. So bodies over ``OFF_LOOP_BYTES`` go to ``DecodePool``: a thread (one body at a time), or ``processes``
spawned interpreters that get the body's bytes and send back the validated batch, its metrics already encoded as
chunks (``series.batch.MetricBatch``). Processes are the default from 4 cores on (``default_processes``); on 2 cores
shared with the client they cost more CPU than they freed. Only what this server's own code built crosses the pipe,
pickled: a body's bytes go in as one ``bytes`` object, never as received pickles, and nothing from the network is
unpickled.

Bounded: at most two bodies per process (threads only: one) are decoded at once; the rest wait on the loop, holding
only their bytes. The processes start with the first large body (a server that only sees small ones never spawns
any); until they are up, and if the pool breaks, bodies are decoded in a thread.
"""
from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from ml_dash.server.ingest import Validator, decode_body
from ml_dash.server.ingest_columns import gc_paused

log = logging.getLogger("ml_dash.server")

OFF_LOOP_BYTES = 1 << 20  # smaller bodies are decoded on the loop: handing them over would cost more than decoding


def default_processes() -> int:
    """Half the cores (at most 4) from 4 cores on; none on 1 or 2 cores, where a decoding process took more CPU than
    it freed (its start, the copies both ways): on a 2-core machine shared with the client, 1M points were durable
    sooner with threads (11.6-12.4 s against 13.5-15.6 s with a process, docs/remote.md)."""
    cores = os.cpu_count() or 1
    return 0 if cores <= 2 else min(4, cores // 2)


def decode_batch(raw: bytes, content_type: str, limits: tuple[int, int, int, int]) -> dict:
    """A batch body's bytes → ``Validator.batch(…, columns=True)``: in a pool process, a thread, or inline."""
    max_name_length, max_events, max_items, max_json_bytes = limits
    with gc_paused():
        body = decode_body(raw, content_type, max_items, max_json_bytes)
        return Validator(max_name_length, max_events, max_items).batch(body, columns=True)


def _started() -> int:
    # A terminal's Ctrl-C reaches the whole process group: the server shuts its pool down itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return os.getpid()


class DecodePool:
    def __init__(self, processes: int) -> None:
        self.processes = max(0, processes)
        self._executor: ProcessPoolExecutor | None = None
        self._ready = False
        self._slots: asyncio.Semaphore | None = None
        self._warmups: list = []
        self.decoded_in_processes = 0  # for tests and the benchmark: bodies the pool decoded

    async def decode(self, raw: bytes, content_type: str, limits: tuple[int, int, int, int]) -> dict:
        if len(raw) <= OFF_LOOP_BYTES:
            return decode_batch(raw, content_type, limits)
        if self._slots is None:
            self._slots = asyncio.Semaphore(max(1, 2 * self.processes))
        async with self._slots:
            executor = self._pool()
            if executor is None:  # threads share one GIL: more than a couple at once only slow the loop down
                return await asyncio.to_thread(decode_batch, raw, content_type, limits)
            try:
                result = await asyncio.get_running_loop().run_in_executor(executor, decode_batch, raw, content_type,
                                                                          limits)
            except BrokenProcessPool:
                log.warning("ml-dash: the decoding pool broke (a process died); decoding in a thread, restarting it")
                self._discard(executor)
                return await asyncio.to_thread(decode_batch, raw, content_type, limits)
        self.decoded_in_processes += 1
        return result

    async def started(self) -> None:
        """Start the processes now and wait until they run (the server starts them at its first large body)."""
        self._pool()
        if self._executor is not None:
            await asyncio.gather(*(asyncio.wrap_future(w) for w in self._warmups))

    def _pool(self) -> Executor | None:
        """The pool once its processes run; None (decode in a thread) before, after starting them if need be."""
        if self.processes == 0:
            return None
        if self._executor is None:
            self._executor = ProcessPoolExecutor(self.processes, multiprocessing.get_context("spawn"),
                                                 initializer=_started)
            executor = self._executor
            warmups = self._warmups = [executor.submit(_started) for _ in range(self.processes)]

            def up(_future: Any) -> None:
                if self._executor is executor and all(w.done() and not w.exception() for w in warmups):
                    self._ready = True

            for warmup in warmups:
                warmup.add_done_callback(up)
        return self._executor if self._ready else None

    def _discard(self, executor: ProcessPoolExecutor) -> None:
        if self._executor is executor:
            self._executor, self._ready = None, False
        executor.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        if self._executor is not None:
            self._discard(self._executor)
