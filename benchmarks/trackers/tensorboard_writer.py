"""TensorBoard through torch's ``SummaryWriter``: one ``add_scalar`` per metric, all three timed as the step."""
from __future__ import annotations

import importlib.util
import os

from .base import Tracker, complete_steps


class TensorBoardWriter(Tracker):
    name = "tensorboard"
    label = "TensorBoard (torch SummaryWriter)"
    module = "tensorboard"
    dist = "tensorboard"
    call = "3 x writer.add_scalar(k, v, i)"
    needs_torch = True  # the writer is torch's

    def available(self):
        ok, why = super().available()
        if ok and importlib.util.find_spec("torch") is None:
            return False, "torch is not installed"
        return ok, why

    def setup(self, out, meta):
        from torch.utils.tensorboard import SummaryWriter

        w = SummaryWriter(log_dir=os.path.join(out, "tb"))
        add = w.add_scalar

        def log(i, d):
            for k, v in d.items():
                add(k, v, i)

        return log, w.close

    def readback(self, out, meta):
        from tensorboard.backend.event_processing import event_accumulator

        ea = event_accumulator.EventAccumulator(os.path.join(out, "tb"), size_guidance={event_accumulator.SCALARS: 0})
        ea.Reload()
        steps: dict[int, set] = {}
        for k in ea.Tags().get("scalars", []):
            for e in ea.Scalars(k):
                steps.setdefault(e.step, set()).add(k)
        return {"stored": complete_steps(steps), "how": "event_accumulator.EventAccumulator"}
