"""The queue's policies, on a small pipeline built in this process: back-pressure (block or drop) and batch size.

``Pipeline`` takes plain values, so these need no subprocess and no environment variables; the writer is held off
(``writer_held``) to make each interleaving deterministic, and every test ends on ``flush()``.
"""
from __future__ import annotations

import collections
import textwrap
import threading

import pytest

from ml_dash.client.pipeline.core import WRITERS, Pipeline
from ml_dash.settings import WRITER


class RecordingSink:
    """Keeps every exported batch and every dropped event."""

    has_pending = False

    def __init__(self) -> None:
        self.batches: list[list] = []
        self.drops: list = []

    def export(self, batch: list) -> None:
        self.batches.append(list(batch))
        batch.clear()

    def count_drop(self, event) -> None:
        self.drops.append(event)

    def dropped(self, store_key: int) -> int:
        return len(self.drops)

    def close_store(self, store_key: int) -> None:
        pass

    def after_fork_in_child(self) -> None:
        pass

    def shutdown(self, timeout) -> None:
        pass

    @property
    def written(self) -> list:
        return [event for batch in self.batches for event in batch]


class WatchedQueue(collections.deque):
    """The pipeline's deque, remembering its longest length and signalling once it went past ``limit``."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit, self.longest, self.over = limit, 0, threading.Event()

    def append(self, event) -> None:
        super().append(event)
        self.longest = max(self.longest, len(self))
        if len(self) > self.limit:
            self.over.set()


def put(pipeline: Pipeline, event) -> None:
    """What a logging call does: append, and take the slow path when the queue reaches the threshold."""
    pipeline.queue.append(event)
    if len(pipeline.queue) >= pipeline.threshold:
        pipeline.slow_path()


def small(on_full: str = "block", capacity: int = 3, batch_size: int = 3) -> tuple[Pipeline, RecordingSink]:
    sink = RecordingSink()
    # An hour between timed wake-ups: the writer runs only when woken (a full batch, a flush, a full queue).
    return Pipeline(sink, capacity=capacity, batch_size=batch_size, interval=3600.0, on_full=on_full), sink


def test_exports_batches_of_at_most_batch_size_in_order():
    pipeline, sink = small(capacity=100, batch_size=10)
    with pipeline.writer_held() as held:
        assert held
        for i in range(35):
            put(pipeline, {"i": i})
    assert pipeline.flush(30)
    assert [len(b) for b in sink.batches] == [10, 10, 10, 5]
    assert sink.written == [{"i": i} for i in range(35)] and not sink.drops


def test_batch_size_is_capped_by_capacity():
    pipeline, _ = small(capacity=5, batch_size=10)
    assert pipeline.batch_size == 5


def test_drop_policy_keeps_capacity_events_and_counts_the_rest():
    pipeline, sink = small(on_full="drop", capacity=3)
    with pipeline.writer_held():  # nothing drains: every event past the capacity is dropped, newest first
        for i in range(10):
            put(pipeline, {"i": i})
        assert len(pipeline.queue) == 3
    assert pipeline.flush(30)
    assert sink.written == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert sink.drops == [{"i": i} for i in range(3, 10)]


def test_drop_policy_never_drops_a_flush_barrier():
    pipeline, sink = small(on_full="drop", capacity=3)
    with pipeline.writer_held():
        for i in range(3):
            put(pipeline, {"i": i})
        done = threading.Event()
        pipeline.post_barrier(done)  # the queue is now past its capacity, with a barrier last
        put(pipeline, {"i": 3})  # dropped; the barrier stays
    assert done.wait(30) and pipeline.flush(30)
    assert sink.written == [{"i": i} for i in range(3)] and sink.drops == [{"i": 3}]


def test_block_policy_holds_the_caller_until_there_is_room_and_loses_nothing():
    pipeline, sink = small(on_full="block", capacity=3)
    pipeline.queue = queue = WatchedQueue(limit=3)
    producer = threading.Thread(target=lambda: [put(pipeline, {"i": i}) for i in range(10)])
    with pipeline.writer_held():
        producer.start()
        assert queue.over.wait(30)  # the producer appended a 4th event: it now waits for room
        assert producer.is_alive() and not sink.batches
    producer.join(30)
    assert not producer.is_alive()
    assert pipeline.flush(30)
    assert queue.longest == 4  # never more than capacity + the one event whose caller is waiting
    assert sink.written == [{"i": i} for i in range(10)] and not sink.drops


@pytest.mark.parametrize("kwargs, message", [({"on_full": "spill"}, "on_full must be 'block' or 'drop'"),
                                             ({"writer_kind": "fibre"}, "writer must be 'thread' or 'asyncio'")])
def test_plain_values_are_checked_like_the_variables(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Pipeline(RecordingSink(), **kwargs)


def test_the_writer_setting_offers_exactly_the_writers_there_are():
    assert set(WRITER.type) == set(WRITERS)


def test_the_process_pipeline_resolves_its_settings_from_the_environment(run_python):
    """The composition root (pipeline/process.py) is the one place the queue's variables are read."""
    proc = run_python(textwrap.dedent("""
        from ml_dash.client.pipeline.process import PIPELINE as p
        print(p.capacity, p.batch_size, p.interval, p.on_full, p.exit_timeout, p.complete_timeout, p.writer_kind)
    """), env={"ML_DASH_QUEUE_SIZE": "50", "ML_LOGGER_BATCH_SIZE": "7", "ML_DASH_FLUSH_INTERVAL": "0.5",
               "ML_DASH_ON_FULL": "drop", "ML_DASH_EXIT_TIMEOUT": "3", "ML_DASH_COMPLETE_TIMEOUT": "4",
               "ML_DASH_WRITER": "asyncio"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["50", "7", "0.5", "drop", "3.0", "4.0", "asyncio"]
