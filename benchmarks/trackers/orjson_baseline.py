"""Floor: orjson + a buffered file write on the caller."""
from __future__ import annotations

import os

from .base import Tracker, complete_steps


class OrjsonBaseline(Tracker):
    name = "orjson"
    label = "baseline: orjson + buffered write"
    module = "orjson"
    dist = "orjson"
    call = "f.write(orjson.dumps({'step': i, **d}) + b'\\n')"
    baseline = True

    def setup(self, out, meta):
        import orjson

        path = os.path.join(out, "metrics.jsonl")
        f = open(path, "wb", buffering=1 << 16)
        dumps, write = orjson.dumps, f.write
        opt = orjson.OPT_SERIALIZE_NUMPY

        def default(v):  # a tensor: orjson cannot encode one, so the caller must pull the number out
            return v.item()

        def log(i, d):
            write(dumps({"step": i, **d}, default=default, option=opt) + b"\n")

        return log, f.close

    def readback(self, out, meta):
        import orjson

        steps: dict[int, set] = {}
        with open(os.path.join(out, "metrics.jsonl"), "rb") as f:
            for line in f:
                r = orjson.loads(line)
                steps.setdefault(r["step"], set()).update(r)
        return {"stored": complete_steps(steps), "how": "read the JSONL back"}
