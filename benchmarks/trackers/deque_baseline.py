"""Floor: ``deque.append(dict)``, the least a logging call can do on the caller."""
from __future__ import annotations

from collections import deque

from .base import KEYS, Tracker


class DequeBaseline(Tracker):
    name = "deque"
    label = "baseline: deque.append(dict)"
    module = None
    dist = None
    call = "q.append({'step': i, **d})"
    baseline = True
    in_memory = True

    def setup(self, out, meta):
        self.q: deque = deque()
        append = self.q.append
        return (lambda i, d: append({"step": i, **d})), (lambda: None)

    def stored_in_memory(self):
        return sum(1 for r in self.q if all(k in r for k in KEYS))

    def readback(self, out, meta):
        return {"stored": None, "how": "in memory (counted in the worker)"}
