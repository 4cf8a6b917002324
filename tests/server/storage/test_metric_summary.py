"""``Storage.metric_summary`` (GraphQL ``Experiment.metricSummary``) on every backend: count, last and finite
extremes per metric across chunks and blocks, out of the block summaries."""
from __future__ import annotations

import math

import numpy as np


async def test_summary_counts_and_extremes_across_chunks_and_blocks(storage):
    experiment_id, _ = await storage.create_experiment("a", "w", "", "p", None, None)
    run_id = await storage.create_run(experiment_id, "c", None, 1.0)
    rng = np.random.default_rng(1)
    values = rng.normal(size=3000)
    values[1234] = 50.0  # inside the third block of the second chunk
    values[2000] = math.inf  # not finite: no extreme
    for chunk in range(3):  # three batches of 1000 points: several blocks of 512 each
        events = [{"timestamp": 1.0, "step": s, "metrics": {"loss": float(values[s])}}
                  for s in range(chunk * 1000, chunk * 1000 + 1000)]
        await storage.apply_batch(experiment_id, run_id, "metrics", "m", chunk, chunk + 1, events)
    await storage.apply_batch(experiment_id, run_id, "metrics", "m", 3, 4, [
        {"timestamp": 2.0, "metrics": {"train_runtime": 12.5}},
        {"timestamp": 2.0, "step": 1, "metrics": {"only_nan": math.nan}},
    ])
    summary = {m["name"]: m for m in await storage.metric_summary(experiment_id)}
    assert list(summary) == ["loss", "only_nan", "train_runtime"]
    finite = values[np.isfinite(values)]
    assert summary["loss"] == {"name": "loss", "last": float(values[-1]), "min": float(finite.min()), "max": 50.0,
                               "count": 3000}
    assert summary["train_runtime"] == {"name": "train_runtime", "last": 12.5, "min": 12.5, "max": 12.5, "count": 1}
    assert math.isnan(summary["only_nan"]["last"]) and summary["only_nan"]["min"] is None
    assert summary["only_nan"]["count"] == 1
