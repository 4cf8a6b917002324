"""Start an ml-dash server on 127.0.0.1, log a run to it, and read it back through GraphQL.

    python examples/remote_demo.py            # starts its own server in ./ml-dash-data, stops it at the end
    python examples/remote_demo.py --keep     # keeps the server up until Ctrl-C and prints the dashboard URL
    python examples/remote_demo.py --remote http://127.0.0.1:8000   # use a server you started yourself
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import secrets
import signal
import sys
import tempfile
import time
import urllib.request

from ml_dash import Experiment


def graphql(base_url: str, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(f"{base_url}/graphql", data=json.dumps({"query": query, "variables": variables or {}}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.loads(response.read())
    if body.get("errors"):
        raise RuntimeError(body["errors"])
    return body["data"]


def train(remote: str, local_root: str, prefix: str, seed: int) -> Experiment:
    exp = Experiment(namespace="alice", workspace="demo", prefix=prefix, directory="mnist/cnn", remote=remote,
                     local_root=local_root, readme="A demo run logged to a local ml-dash server")
    rng = random.Random(seed)
    with exp.run():
        exp.params.set(lr=0.001, batch_size=64, model={"layers": 4, "dropout": 0.1}, seed=seed)
        train_metrics, val_metrics = exp.metrics("train"), exp.metrics("val")
        for epoch in range(20):
            for batch in range(100):
                step = epoch * 100 + batch
                loss = math.exp(-step / 600) + rng.random() * 0.05
                train_metrics.log(step=step, loss=loss, accuracy=1 - loss / 2)
            val_metrics.log(step=(epoch + 1) * 100, loss=math.exp(-epoch / 6) + 0.03, accuracy=0.5 + epoch * 0.02)
            exp.info("epoch finished", epoch=epoch)
        exp.files.save({"val_accuracy": 0.88}, "summary.json")
    return exp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--remote", help="an ml-dash server to use instead of starting one")
    parser.add_argument("--data", default="./ml-dash-data", help="the started server's data directory")
    parser.add_argument("--keep", action="store_true", help="keep the started server running until Ctrl-C")
    args = parser.parse_args()
    # `kill` (SIGTERM) ends the demo as Ctrl-C does: the with-block below then stops the server it started, instead
    # of the process dying at once and leaving the server running.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    # Each demo gets prefixes of its own: a second demo against the same server must not append to the first's runs.
    demo = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    with contextlib.ExitStack() as stack:
        base_url = args.remote
        if base_url is None:
            from ml_dash.server.testing import running_server

            os.makedirs(args.data, exist_ok=True)
            base_url = stack.enter_context(running_server(args.data))
            print(f"ml-dash server running at {base_url} (data in {args.data})")
        local_root = stack.enter_context(tempfile.TemporaryDirectory(prefix="ml-dash-demo-"))
        runs = [train(base_url, local_root, f"{demo}/run-{i}", seed=i) for i in range(2)]
        for exp in runs:
            data = graphql(base_url, """query($id: ID!) { experiment(id: $id) { prefix status params metricNames
                               metric(name: "train.loss", maxPoints: 50) { count min max } logs(limit: 1000) { message } } }""",
                           {"id": exp.experiment_id})["experiment"]
            print(f"{data['prefix']}: status={data['status']} metrics={data['metricNames']} "
                  f"train.loss points={data['metric']['count']} (min {data['metric']['min']:.3f}, max {data['metric']['max']:.3f}) "
                  f"logs={len(data['logs'])} params={json.dumps(data['params'])}")
        dashboard = f"{base_url}/#/exp/{runs[0].experiment_id}"
        if args.remote is not None:  # the user's own server: it stays up
            print(f"dashboard: {dashboard}")
        elif args.keep:
            with contextlib.suppress(KeyboardInterrupt):  # the print too: a Ctrl-C may come as soon as it is read
                print(f"dashboard: {dashboard}  (the server runs until Ctrl-C)", flush=True)
                import threading

                threading.Event().wait()
        else:
            # A URL printed here would be dead by the time it is read: the server stops as this block ends.
            print("the demo server stops now; run again with --keep to browse the dashboard "
                  "(bash scripts/demo.sh --keep)")


if __name__ == "__main__":
    main()
