"""Seed a running ml-dash server over the ingest protocol (docs/protocol.md), the way a client library would.

Used by the dashboard tests and by docs/make_screenshots.py. Batches go as msgpack; byte offsets are those of the JSONL
lines the client would have written, so the server's exactly-once bookkeeping sees a realistic stream.
"""
from __future__ import annotations

import json
import math
import random
import struct
import time
import urllib.request
import uuid
import zlib
from typing import Any

import msgpack
import orjson

MAX_EVENTS_PER_BATCH = 100_000


class Server:
    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token

    def request(self, method: str, path: str, body: Any = None, raw: bytes | None = None) -> dict:
        headers = {"Accept": "application/json"}
        data = raw
        if body is not None:
            data = msgpack.packb(body)
            headers["Content-Type"] = "application/msgpack"
        elif raw is not None:
            headers["Content-Type"] = "application/octet-stream"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        with urllib.request.urlopen(request, timeout=120) as answer:
            return json.loads(answer.read())

    def experiment(self, namespace: str, workspace: str, prefix: str, directory: str = "", readme: str | None = None,
                   hostname: str = "gpu-node-1", started_at: float | None = None) -> "SeededExperiment":
        body = {"namespace": namespace, "workspace": workspace, "prefix": prefix, "directory": directory,
                "hostname": hostname}
        if readme is not None:
            body["readme"] = readme
        experiment_id = self.request("POST", "/api/v1/experiments", body)["experiment_id"]
        return SeededExperiment(self, experiment_id, hostname, started_at or time.time())


class SeededExperiment:
    def __init__(self, server: Server, experiment_id: str, hostname: str, started_at: float) -> None:
        self.server = server
        self.id = experiment_id
        self.clock = started_at
        client = uuid.uuid4().hex
        self.stream_ids = {stream: f"{client}:{stream}" for stream in ("metrics", "parameters", "logs")}
        self.offsets = {stream: 0 for stream in self.stream_ids}
        self.run_id = server.request("POST", f"/api/v1/experiments/{experiment_id}/runs",
                                     {"client_run_id": client, "hostname": hostname, "started_at": started_at})["run_id"]

    def batch(self, stream: str, events: list[dict]) -> None:
        for first in range(0, len(events), MAX_EVENTS_PER_BATCH):
            chunk = events[first:first + MAX_EVENTS_PER_BATCH]
            start = self.offsets[stream]
            end = start + sum(len(orjson.dumps(e)) + 1 for e in chunk)  # the JSONL bytes, newline included
            self.server.request("POST", f"/api/v1/experiments/{self.id}/batches", {
                "run_id": self.run_id, "stream": stream, "stream_id": self.stream_ids[stream],
                "start": start, "end": end, "events": chunk})
            self.offsets[stream] = end

    def params(self, **data: Any) -> None:
        self.batch("parameters", [{"timestamp": self.clock, "operation": "set", "data": data}])

    def metrics(self, rows: list[tuple[int, dict[str, Any]]], seconds_per_step: float = 1.0) -> None:
        events = []
        for step, values in rows:
            events.append({"timestamp": self.clock, "step": step, "metrics": values})
            self.clock += seconds_per_step
        self.batch("metrics", events)

    def log(self, level: str, message: str, **context: Any) -> None:
        self.batch("logs", [{"timestamp": self.clock, "level": level, "message": message, "context": context}])

    def upload(self, path: str, content: bytes) -> None:
        self.server.request("PUT", f"/api/v1/experiments/{self.id}/files/{path}", raw=content)

    def finish(self, status: str = "COMPLETED", error: str | None = None) -> None:
        body: dict[str, Any] = {"status": status, "ended_at": self.clock}
        if error:
            body["error"] = error
        self.server.request("PATCH", f"/api/v1/runs/{self.run_id}", body)


def training_curves(steps: int, lr: float, layers: int, seed: int) -> list[tuple[int, dict[str, float]]]:
    """Plausible train/val curves: faster convergence for larger lr (until it is too large), a bit of noise."""
    rng = random.Random(seed)
    rate = min(lr, 0.02) * 300 / steps + layers / 5000
    rows = []
    for step in range(steps):
        base = 2.3 * math.exp(-rate * step) + 0.1 + (0.3 if lr >= 0.1 else 0.0)
        train_loss = base * (1 + 0.08 * rng.gauss(0, 1))
        values: dict[str, float] = {"train.loss": round(train_loss, 5),
                                    "train.acc": round(min(1.0, 1 - base / 2.6 + 0.02 * rng.gauss(0, 1)), 5),
                                    "lr": lr * (0.5 ** (step // (steps // 2 or 1)))}
        if step % 10 == 0:
            values["val.loss"] = round(base * 1.1, 5)
            values["val.acc"] = round(min(1.0, 1 - base * 1.1 / 2.6), 5)
        rows.append((step, values))
    return rows


def png_image(width: int = 96, height: int = 64) -> bytes:
    """A small gradient PNG written by hand (no Pillow needed)."""
    rows = b"".join(b"\x00" + bytes(v for x in range(width) for v in (x * 255 // width, y * 255 // height, 160))
                    for y in range(height))

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


SWEEP = [(0.001, 18), (0.01, 50), (0.1, 101)]


def seed_demo(server: Server, steps: int = 300) -> dict[str, SeededExperiment]:
    """A small sweep in alice/vision/sweeps/resnet, one failed run, one RUNNING run. Returns them by prefix."""
    seeded = {}
    t0 = time.time() - 4 * 3600
    for index, (lr, layers) in enumerate(SWEEP):
        prefix = f"resnet-lr{lr}"
        exp = server.experiment("alice", "vision", prefix, directory="sweeps/resnet", started_at=t0 + index * 600,
                                hostname=f"gpu-node-{index + 1}",
                                readme=f"# ResNet-{layers} sweep\n\nLearning rate **{lr}** on CIFAR-10.\n\n"
                                       "- optimizer: `sgd` with momentum\n- augmentation: random crop + flip")
        exp.params(lr=lr, batch_size=128, optimizer="sgd",
                   model={"name": f"resnet{layers}", "layers": layers, "dropout": 0.1},
                   data={"name": "cifar10", "augment": True})
        exp.metrics(training_curves(steps, lr, layers, seed=index), seconds_per_step=2.0)
        exp.log("INFO", "starting training", epoch=0)
        exp.log("WARNING", "learning rate warm-up skipped", lr=lr)
        exp.log("DEBUG", "data loader ready", workers=8)
        exp.log("INFO", "finished", best_val_acc=0.91)
        exp.upload("config.json", orjson.dumps({"lr": lr, "model": {"layers": layers}}))
        exp.upload("plots/confusion.png", png_image())
        exp.upload("notes.txt", f"lr={lr}: looks stable\n".encode())
        exp.finish()
        seeded[prefix] = exp

    failed = server.experiment("alice", "vision", "vit-small", directory="baselines", started_at=t0 + 3000,
                               hostname="gpu-node-4", readme="Vision transformer baseline.")
    failed.params(lr=0.0005, batch_size=256, optimizer="adamw", model={"name": "vit-s", "layers": 12, "dropout": 0.0})
    failed.metrics(training_curves(steps // 3, 0.0005, 12, seed=7), seconds_per_step=3.0)
    failed.log("ERROR", "CUDA out of memory", device="cuda:0", batch_size=256)
    failed.finish("FAILED", error="RuntimeError: CUDA out of memory")
    seeded["vit-small"] = failed

    live = server.experiment("alice", "vision", "resnet-live", directory="sweeps/resnet", started_at=time.time() - 300,
                             hostname="gpu-node-5", readme="A run that is still training.")
    live.params(lr=0.005, batch_size=128, optimizer="sgd", model={"name": "resnet34", "layers": 34, "dropout": 0.1})
    live.metrics(training_curves(steps, 0.005, 34, seed=9)[:steps // 2], seconds_per_step=1.0)
    live.log("INFO", "training", epoch=1)
    seeded["resnet-live"] = live

    other = server.experiment("bob", "nlp", "gpt-tiny", readme="Character-level language model.")
    other.params(lr=0.0003, context=256, model={"layers": 6, "heads": 8})
    other.metrics([(s, {"loss": 4.2 * math.exp(-s / 80) + 1.1}) for s in range(200)])
    other.finish()
    seeded["gpt-tiny"] = other
    return seeded


def seed_big_series(server: Server, points: int, spike_step: int, spike_value: float) -> SeededExperiment:
    """One metric with ``points`` points of small noise and a single spike: downsampling must keep the spike."""
    exp = server.experiment("alice", "scale", "million-points", readme="A long series with one loss spike.")
    rng = random.Random(1)
    rows = [(step, {"loss": 1.0 + 0.01 * rng.random()}) for step in range(points)]
    rows[spike_step] = (spike_step, {"loss": spike_value})
    exp.metrics(rows, seconds_per_step=0.01)
    exp.finish()
    return exp


SWEEP_LRS = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3]
SWEEP_OPTIMIZERS = ["sgd", "adam"]


def seed_sweep(server: Server, steps: int = 60, spike: tuple[str, int, float] | None = None,
               workspace: str = "sweep") -> dict[str, str]:
    """A 6 lr × 2 optimizer × 2 seed grid (24 runs) in alice/<workspace>/grid/<optimizer>: ``loss`` and ``acc`` per
    step, 5 s apart, noisy; ``spike`` = (prefix, step, value) gives one run a one-step loss spike. Ids by prefix."""
    ids = {}
    for lr in SWEEP_LRS:
        for optimizer in SWEEP_OPTIMIZERS:
            for seed in (0, 1):
                prefix = f"sweep-lr{lr}-{optimizer}-s{seed}"
                exp = server.experiment("alice", workspace, prefix, directory=f"grid/{optimizer}")
                exp.params(lr=lr, optimizer=optimizer, seed=seed, batch_size=64)
                rng = random.Random(f"{prefix}")
                rate = lr * (12 if optimizer == "adam" else 8) * 60 / steps
                rows = [(s, {"loss": 2.0 * math.exp(-rate * s) + 0.05 + 0.06 * rng.random(),
                             "acc": round(1 - math.exp(-rate * s) * (0.9 + 0.1 * rng.random()), 5)}) for s in range(steps)]
                if spike and prefix == spike[0]:
                    rows[spike[1]] = (spike[1], {"loss": spike[2], "acc": 0.5})
                exp.metrics(rows, seconds_per_step=5.0)
                exp.finish()
                ids[prefix] = exp.id
    return ids
