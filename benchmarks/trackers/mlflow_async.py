"""MLflow with a sqlite tracking store and ``synchronous=False``: the cost moves to ``flush_async_logging()`` +
``end_run()``, timed together as its finish."""
from __future__ import annotations

from .mlflow_sqlite import MlflowSqlite


class MlflowAsync(MlflowSqlite):
    name = "mlflow_async"
    label = "MLflow (sqlite, synchronous=False)"
    call = "mlflow.log_metrics(d, step=i, synchronous=False)"

    def setup(self, out, meta):
        mlflow = self.start(out, meta)
        log_metrics = mlflow.log_metrics

        def finish():
            mlflow.flush_async_logging()
            mlflow.end_run()

        return (lambda i, d: log_metrics(d, step=i, synchronous=False)), finish
