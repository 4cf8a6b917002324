"""The spec's quick start: a local run under .ml-logger/alice/my-project/experiment-1/."""
from ml_dash import Experiment

exp = Experiment(namespace="alice", workspace="my-project", prefix="experiment-1")

with exp.run():
    exp.params.set(learning_rate=0.001, batch_size=32, epochs=100)
    for epoch in range(100):
        exp.metrics.log(step=epoch, loss=0.5 - epoch * 0.01, accuracy=0.5 + epoch * 0.005)
    exp.info("Training completed!")
    exp.files.save({"final": "results"}, "results.json")

print(f"wrote {len(exp.metrics.read())} metric rows to {exp.local_path}")
