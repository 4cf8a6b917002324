"""ml-dash, local store only: ``exp.metrics.log(step=i, **d)``."""
from __future__ import annotations

import os

from .base import Tracker, complete_steps


class MlDashLocal(Tracker):
    name = "mldash"
    label = "ml-dash (local)"
    module = "ml_dash"
    dist = "ml-dash"
    call = "exp.metrics.log(step=i, **d)"

    def experiment_kw(self, meta: dict) -> dict:
        return {}

    def setup(self, out, meta):
        from ml_dash import Experiment

        exp = Experiment(namespace="bench", workspace="compare", prefix="run", local_root=os.path.join(out, "ml-dash"),
                         **self.experiment_kw(meta))
        exp.run()
        log = exp.metrics.log
        meta["local_path"] = exp.local_path
        return (lambda i, d: log(step=i, **d)), exp.complete

    @staticmethod
    def local_steps(out: str) -> int:
        from ml_dash import Experiment

        steps: dict[int, set] = {}
        exp = Experiment(namespace="bench", workspace="compare", prefix="run", local_root=os.path.join(out, "ml-dash"))
        for row in exp.metrics.read():
            steps.setdefault(row.get("step"), set()).update((row.get("metrics") or {}).keys())
        return complete_steps(steps)

    def readback(self, out, meta):
        return {"stored": self.local_steps(out), "how": "exp.metrics.read()"}
