"""asyncio: logging from tasks, an awaitable flush that leaves the loop free, cancellation, the asyncio-task writer."""
import asyncio
import json
import os
import threading

import pytest

from ml_dash.client.pipeline.process import PIPELINE


def count_lines(path):
    with open(path, "rb") as f:
        return f.read().count(b"\n")


async def test_many_tasks_log_concurrently(make_exp):
    """50 tasks logging interleaved rows: all arrive, each task's rows in its own order."""
    exp = make_exp()

    async def worker(w):
        for i in range(200):
            exp.metrics.log(step=i, **{f"w{w}": float(i)})
            if i % 7 == 0:
                await asyncio.sleep(0)

    async with exp.run():
        await asyncio.gather(*(worker(w) for w in range(50)))
        assert await exp.flush_async()
    rows = exp.metrics.read()
    assert len(rows) == 50 * 200
    for w in range(50):
        assert [r["step"] for r in rows if f"w{w}" in r["metrics"]] == list(range(200))
    assert exp.status == "completed"


async def test_ticker_keeps_ticking_through_burst_and_flush(make_exp):
    """A ticker task runs while 100k log calls are made and while flush_async waits for the writer."""
    exp = make_exp()
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0)
            ticks += 1

    tick_task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    log = exp.metrics.log
    before = ticks
    for i in range(100_000):
        log(step=i, loss=0.5, acc=1)  # a plain synchronous call, also inside a coroutine
        if i % 1000 == 999:
            await asyncio.sleep(0)
    during_burst = ticks - before
    before = ticks
    assert await exp.flush_async()
    during_flush = ticks - before
    tick_task.cancel()
    assert during_burst >= 100  # one tick per yield of the burst: log() never blocked the loop
    assert during_flush >= 1  # the loop ran while the writer wrote
    assert count_lines(os.path.join(exp.local_path, "metrics.jsonl")) == 100_000


async def test_flush_async_times_out_without_blocking(make_exp):
    """flush_async(timeout) returns False while the writer is held up, True once it can write."""
    exp = make_exp()
    exp.metrics.log(step=0, x=1.0)
    assert await exp.flush_async()
    exp.metrics.log(step=1, x=2.0)
    with PIPELINE.writer_held():  # the writer cannot drain while this is held
        assert await exp.flush_async(timeout=0.05) is False
    assert await exp.flush_async()
    assert [r["step"] for r in exp.metrics.read()] == [0, 1]


async def test_cancellation_marks_run_failed_and_keeps_data(make_exp):
    """A task cancelled inside `async with exp.run()` leaves a failed run with everything it logged."""
    exp = make_exp()
    started = asyncio.Event()

    async def train():
        async with exp.run():
            for i in range(100):
                exp.metrics.log(step=i, loss=1.0 / (i + 1))
            exp.info("about to wait")
            started.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(train())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert exp.status == "failed"
    with open(os.path.join(exp.local_path, ".ml-logger.meta.json")) as f:
        meta = json.load(f)
    assert meta["status"] == "failed" and "CancelledError" in meta["error"]
    assert [r["step"] for r in exp.metrics.read()] == list(range(100))
    assert [entry["message"] for entry in exp.logs.read()] == ["about to wait"]


async def test_cancelled_decorated_coroutine_marks_run_failed(make_exp):
    """`@exp.run` on a coroutine function: cancelling it marks the run failed and keeps its data."""
    exp = make_exp()
    started = asyncio.Event()

    @exp.run
    async def train():
        exp.metrics.log(step=0, loss=1.0)
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(train())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert exp.status == "failed"
    assert [r["step"] for r in exp.metrics.read()] == [0]


WORKLOAD = r"""
import asyncio, itertools, json, sys, threading
import ml_dash.client.metrics, ml_dash.client.logs, ml_dash.client.params
from ml_dash import Experiment
from ml_dash.client.pipeline.process import PIPELINE

clock = itertools.count(1_700_000_000)
for module in (ml_dash.client.metrics, ml_dash.client.logs, ml_dash.client.params):
    module._time = lambda: float(next(clock))  # identical timestamps in both runs

async def main():
    exp = Experiment("alice", "proj", "run", local_root=sys.argv[1])
    async with exp.run():
        exp.params.set(lr=0.1, model={"layers": 3})
        writer_is_task = PIPELINE.writer.owner is threading.current_thread()

        async def worker(w):
            for i in range(6000):
                exp.metrics.log(step=i, **{f"w{w}": i * 0.5, "nan": float("nan") if i % 1000 == 0 else 1.0})
                exp.metrics("train").collect(loss=i / 3)
                if i % 500 == 0:
                    exp.metrics("train").flush(_aggregation="mean", step=i)
                    exp.info("checkpoint", worker=w, step=i)
                    await asyncio.sleep(0)

        await asyncio.gather(*(worker(w) for w in range(5)))
        assert await exp.flush_async()
        rows = exp.metrics.read()  # a synchronous flush on the loop's thread
        exp.params.update("lr", 0.01)
    print(json.dumps({"writer_is_task": writer_is_task, "rows": len(rows),
                      "threads": sorted(t.name for t in threading.enumerate())}))

asyncio.run(main())
"""


def test_asyncio_writer_writes_identical_files(run_python, tmp_path):
    """The asyncio-task writer (ML_DASH_WRITER=asyncio) writes byte-identical files to the thread writer."""
    results, contents = {}, {}
    for kind in ("thread", "asyncio"):
        root = tmp_path / kind
        out = run_python(WORKLOAD.replace("sys.argv[1]", repr(str(root))), env={"ML_DASH_WRITER": kind})
        assert out.returncode == 0, out.stderr
        results[kind] = json.loads(out.stdout.strip().splitlines()[-1])
        run_dir = root / "alice" / "proj" / "run"
        contents[kind] = {name: (run_dir / name).read_bytes()
                          for name in ("metrics.jsonl", "logs.jsonl", "parameters.jsonl")}
    assert results["asyncio"]["writer_is_task"] and not results["thread"]["writer_is_task"]
    assert "ml-dash-writer" not in results["asyncio"]["threads"]
    assert results["thread"]["rows"] == results["asyncio"]["rows"] == 5 * 6000 + 5 * 12
    assert contents["asyncio"] == contents["thread"]


TICKER = r"""
import asyncio, json, sys
from ml_dash import Experiment
from ml_dash.client.pipeline.aio import CHUNK
from ml_dash.client.pipeline.process import PIPELINE

ticks = 0
seen = []  # the ticker's count each time the writer encodes a chunk
export = PIPELINE.sink.export
def recording_export(batch):
    seen.append(ticks)
    export(batch)
PIPELINE.sink.export = recording_export

async def ticker():
    global ticks
    while True:
        await asyncio.sleep(0)
        ticks += 1

async def main():
    exp = Experiment("alice", "proj", "run", local_root=sys.argv[1])
    tick_task = asyncio.create_task(ticker())
    for i in range(100_000):
        exp.metrics.log(step=i, loss=0.5)
    assert await exp.flush_async()
    tick_task.cancel()
    print(json.dumps({"seen": seen, "chunk": CHUNK}))

asyncio.run(main())
"""


def test_asyncio_writer_yields_to_the_loop_between_chunks(run_python, tmp_path):
    """With the asyncio writer, a ticker task runs between every two chunks the writer encodes."""
    out = run_python(TICKER.replace("sys.argv[1]", repr(str(tmp_path / "root"))), env={"ML_DASH_WRITER": "asyncio"})
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    seen = result["seen"]
    assert len(seen) >= 100_000 // result["chunk"]
    assert all(b > a for a, b in zip(seen, seen[1:]))  # the ticker ticked between consecutive chunks
    assert count_lines(tmp_path / "root" / "alice" / "proj" / "run" / "metrics.jsonl") == 100_000


def test_writer_is_a_thread_outside_a_loop(run_python, tmp_path):
    """ML_DASH_WRITER=asyncio with no running loop falls back to the writer thread."""
    code = ("import threading; from ml_dash import Experiment; from ml_dash.client.pipeline.process import PIPELINE\n"
            f"exp = Experiment('a', 'b', 'c', local_root={str(tmp_path / 'r')!r})\n"
            "exp.metrics.log(step=0, x=1.0); assert exp.flush()\n"
            "print(PIPELINE.writer.owner.name, len(exp.metrics.read()))")
    out = run_python(code, env={"ML_DASH_WRITER": "asyncio"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["ml-dash-writer", "1"]
