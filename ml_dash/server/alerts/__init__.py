"""Alert rules the server evaluates as batches land, the watchdog tick, and webhook deliveries (docs/alerts.md)."""
