"""Batch-level metrics: collect every batch, flush one aggregated row per epoch, separate train/val namespaces."""
import math
import random

from ml_dash import Experiment

exp = Experiment(namespace="alice", workspace="mnist", prefix="batch-metrics", directory="examples",
                 readme="collect() per batch, flush() per epoch")

with exp.run():
    exp.params.set(lr=0.001, batch_size=128, epochs=10, model={"layers": 4, "dropout": 0.1})
    train_metrics, val_metrics = exp.metrics("train"), exp.metrics("val")
    checkpoints = exp.files("checkpoints")
    rng = random.Random(0)
    for epoch in range(10):
        for batch in range(200):
            loss = math.exp(-epoch / 4) + rng.random() * 0.1
            train_metrics.collect(loss=loss, accuracy=1 - loss / 2)
        train_metrics.flush(_aggregation="mean", step=epoch, lr=0.001)
        val_metrics.log(step=epoch, loss=math.exp(-epoch / 4) + 0.05, accuracy=0.5 + epoch * 0.04)
        exp.info("epoch done", epoch=epoch)
        if epoch % 5 == 0:
            checkpoints.save({"epoch": epoch, "weights": [rng.random() for _ in range(10)]}, f"epoch_{epoch}.pkl")

for row in exp.metrics("train").read()[-3:]:
    print(row["step"], row["metrics"])
print("files:", exp.files.list())
