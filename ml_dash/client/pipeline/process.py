"""The one pipeline of this process, shared by every experiment in it (``ml_dash.client.wiring`` gives it its sink).

Its settings are resolved here, once, at import: the ``Pipeline`` itself takes plain values."""
from __future__ import annotations

from ml_dash.client.pipeline.core import Pipeline
from ml_dash.settings import (
    BATCH_SIZE,
    COMPLETE_TIMEOUT,
    EXIT_TIMEOUT,
    FLUSH_INTERVAL,
    MEDIA_QUEUE_BYTES,
    ON_FULL,
    QUEUE_SIZE,
    WRITER,
)

PIPELINE = Pipeline(capacity=QUEUE_SIZE.get(), batch_size=BATCH_SIZE.get(), interval=FLUSH_INTERVAL.get(),
                    on_full=ON_FULL.get(), exit_timeout=EXIT_TIMEOUT.get(), complete_timeout=COMPLETE_TIMEOUT.get(),
                    writer_kind=WRITER.get(), byte_budget=MEDIA_QUEUE_BYTES.get())


def use_asyncio_writer(enabled: bool = True) -> None:
    """Run the writer as a task on the running event loop (from the next start of the writer on)."""
    PIPELINE.writer_kind = "asyncio" if enabled else "thread"
