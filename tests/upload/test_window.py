"""Several batches of a stream in flight (upload/window.py), against a real server behind the fault proxy: answers in
any order, a middle batch retried, the server restarted mid-window — every point still arrives exactly once."""
from __future__ import annotations

import asyncio

from ml_dash.server.testing import free_port, running_server

from .fault_proxy import FaultProxy
from .test_upload import assert_mirrored, log_run

SMALL_BATCHES = {"UPLOAD_BATCH_EVENTS": 500}


def test_batches_go_several_at_once_and_arrive_once(make_exp, server, remote_env):
    """The first batch is held at the proxy until a second one of the same stream arrives beside it: the client
    sent it without waiting for the first answer (marked ahead), and the server stored both once, no 409."""
    remote_env(**SMALL_BATCHES)
    held: list = []
    both = asyncio.Event()

    async def hold(batch):
        if batch[0] == "metrics":
            held.append(batch)
            if len(held) >= 2:
                both.set()
            if len(held) == 1:
                await asyncio.wait_for(both.wait(), 30)

    with FaultProxy(server, fault_rate=0.0, hold=hold) as proxy:
        exp = make_exp("window", remote=proxy.url)
        with exp.run():
            log_run(exp, 20_000)
    assert both.is_set() and held[1][2] is True  # the second held batch was sent ahead of the first's answer
    assert_mirrored(server, exp, list(range(20_000)))
    assert 409 not in proxy.batch_statuses
    assert sum(1 for _t, stream, _s, ahead, _o in proxy.batches if stream == "metrics" and ahead) >= 1


def test_answers_in_the_other_order_are_settled_in_file_order(make_exp, server, remote_env):
    """The first batch's answer is held until the batch after it has been answered: the client sees them
    complete out of order and still acknowledges in order (its state never skips a range)."""
    remote_env(**SMALL_BATCHES)
    later_answered = asyncio.Event()
    first_released = []

    async def hold_answer(batch):
        if batch[:2] == ("metrics", 0):
            await asyncio.wait_for(later_answered.wait(), 30)
            first_released.append(True)

    def answered(batch):
        if batch[0] == "metrics" and batch[1] > 0:
            later_answered.set()

    with FaultProxy(server, fault_rate=0.0, hold_answer=hold_answer, answered=answered) as proxy:
        exp = make_exp("reordered", remote=proxy.url)
        with exp.run():
            log_run(exp, 20_000)
    assert first_released == [True]
    assert_mirrored(server, exp, list(range(20_000)))
    assert 409 not in proxy.batch_statuses


def test_a_middle_batch_retried_still_arrives_once(make_exp, server, remote_env):
    """The second batch of the window is applied but its answer lost (connection cut after forwarding), the third
    is answered 503 once: both are retried with the same byte range, and each point is stored once."""
    remote_env(**SMALL_BATCHES)
    starts: list[int] = []

    def batch_fault(batch, attempt):
        stream, start, _ahead = batch
        if stream != "metrics":
            return None
        if start not in starts:
            starts.append(start)
        if attempt == 0 and starts.index(start) == 1:
            return "cut_after"
        if attempt == 0 and starts.index(start) == 2:
            return "503"
        return None

    with FaultProxy(server, fault_rate=0.0, retry_after="0.01", batch_fault=batch_fault) as proxy:
        exp = make_exp("middle", remote=proxy.url)
        with exp.run():
            log_run(exp, 20_000)
    assert_mirrored(server, exp, list(range(20_000)))
    attempts = [start for _t, stream, start, _a, _o in proxy.batches if stream == "metrics"]
    assert attempts.count(starts[1]) == 2 and attempts.count(starts[2]) == 2
    assert proxy.injected == {"cut_after": 1, "503": 1}


def test_the_server_restarted_mid_window_loses_and_duplicates_nothing(make_exp, tmp_path, remote_env):
    """Batches are in flight (held at the proxy) when the server stops; it comes back on the same data: the held
    requests fail, are retried against the new server, and every point is there once."""
    remote_env(**SMALL_BATCHES)
    port, data = free_port(), tmp_path / "server-data"
    with FaultProxy(f"http://127.0.0.1:{port}", fault_rate=0.0, stall_after=12) as proxy:
        with running_server(data, port=port):
            exp = make_exp("restart-window", remote=proxy.url)
            exp.run()
            log_run(exp, 40_000)
            exp.flush()
            assert proxy.stalled.wait(30)
        held = sum(1 for _t, _m, _p, outcome in proxy.log if outcome == "stalled")
        with running_server(data, port=port) as url:
            proxy.release()
            exp.complete()
            view = assert_mirrored(url, exp, list(range(40_000)))
    assert held >= 1 and view["runs"][0]["status"] == "COMPLETED"
    assert max(ahead for _t, _s, _b, ahead, _o in proxy.batches)  # the window was in use


def test_batches_spread_over_two_server_workers_arrive_once(make_exp, tmp_path, remote_env):
    """With two server processes, consecutive batches of a stream land on either: one that arrives ahead of its
    predecessor on the other worker waits for it (polling the database), and every point is stored once."""
    remote_env(**SMALL_BATCHES)
    with running_server(tmp_path / "server-data", workers=2) as url:
        with FaultProxy(url, fault_rate=0.0) as proxy:
            exp = make_exp("two-workers", remote=proxy.url)
            with exp.run():
                log_run(exp, 20_000)
        assert_mirrored(url, exp, list(range(20_000)))
    assert max(ahead for _t, _s, _b, ahead, _o in proxy.batches)
