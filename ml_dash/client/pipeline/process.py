"""The one pipeline of this process, shared by every experiment in it (``ml_dash.client.wiring`` gives it its sink)."""
from __future__ import annotations

from ml_dash.client.pipeline.core import Pipeline

PIPELINE = Pipeline()


def use_asyncio_writer(enabled: bool = True) -> None:
    """Run the writer as a task on the running event loop (from the next start of the writer on)."""
    PIPELINE.writer_kind = "asyncio" if enabled else "thread"
