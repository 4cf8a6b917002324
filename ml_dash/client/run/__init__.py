"""What one run starts beside the queue: the system-metrics sampler (``system``), what a sample reads (``probes``),
the captured environment (``environment``) and the thread that starts those helpers (``starter``)."""
