"""The logging client: ``Experiment`` and its managers, the queue (``pipeline``), the JSONL sink (``sinks``), the
uploader (``upload``) and what one run starts beside the queue (``run``). Internal: the public names are re-exported
by ``ml_dash``."""
