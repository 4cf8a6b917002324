"""MLflow with a sqlite tracking store, synchronous: ``mlflow.log_metrics(d, step=i)``."""
from __future__ import annotations

import os

from .base import KEYS, Tracker, complete_steps


class MlflowSqlite(Tracker):
    name = "mlflow"
    label = "MLflow (sqlite, sync)"
    module = "mlflow"
    dist = "mlflow"
    call = "mlflow.log_metrics(d, step=i)"

    def steps(self, args):
        # its sqlite store costs milliseconds a step: fewer steps (--mlflow-steps; 0: --steps), per-step columns
        # stay comparable
        if args.mlflow_steps:
            return min(args.steps, args.mlflow_steps)
        return args.steps

    def start(self, out, meta):
        import mlflow

        mlflow.set_tracking_uri("sqlite:///" + os.path.join(out, "mlflow.db"))
        exp_id = mlflow.create_experiment("bench", artifact_location="file://" + os.path.join(out, "artifacts"))
        run = mlflow.start_run(experiment_id=exp_id)
        meta["run_id"] = run.info.run_id
        meta["tracking_uri"] = mlflow.get_tracking_uri()
        return mlflow

    def setup(self, out, meta):
        mlflow = self.start(out, meta)
        log_metrics = mlflow.log_metrics
        return (lambda i, d: log_metrics(d, step=i)), mlflow.end_run

    def readback(self, out, meta):
        from mlflow.tracking import MlflowClient

        c = MlflowClient(tracking_uri=meta["tracking_uri"])
        steps: dict[int, set] = {}
        for k in KEYS:
            for m in c.get_metric_history(meta["run_id"], k):
                steps.setdefault(m.step, set()).add(k)
        return {"stored": complete_steps(steps), "how": "MlflowClient.get_metric_history"}
