#!/usr/bin/env python3
"""Does logging the loss tensor every step slow a GPU training loop? (It must not synchronise the device.)

An MLP training loop (Adam) on CUDA, timed in interleaved blocks of steps, in these variants:

    no logging                        the baseline
    ml-dash log(loss=tensor)          ``exp.metrics.log(step=i, loss=loss)`` every step — the variant under test
    ml-dash collect + flush/100       ``collect(loss=loss)`` every step, ``flush("mean")`` every 100 steps
    log(loss=loss.item())             what one writes without tensor support: a device sync every step (reference)

Each block runs ``--block`` steps and ends with one ``torch.cuda.synchronize()`` (the same for every variant); the
step time is the block's wall time / steps, and the table shows the median over the rounds and the ratio to the
baseline (goal for ml-dash: <= 1.02). Two model sizes: "gpu-bound" (the GPU is the bottleneck, as in real training)
and "launch-bound" (a tiny model where the CPU's kernel-launch time per step is the bottleneck, so any CPU work the
logging call adds shows up in full). Also counted: ``Tensor.item/.cpu/.numpy/.tolist`` calls on the training
thread in each variant (0 expected for ml-dash).

Without CUDA it says so and runs the same comparison on the CPU (smaller sizes). Self-contained; < 60 s.

    python benchmarks/gpu_sync.py
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from ml_dash import Experiment  # noqa: E402

CUDA = torch.cuda.is_available()
DEVICE = torch.device("cuda" if CUDA else "cpu")
MAIN = threading.get_ident()
SYNC_CALLS = {"n": 0, "counting": False}


def instrument() -> None:
    """Count Tensor.item/cpu/numpy/tolist calls on a device tensor made on the training (main) thread inside the
    logging calls: those are the ones that wait for the device. (ml-dash reads a CPU tensor with ``tolist()`` on the
    caller, which waits for nothing; the training step itself may call them too: Adam's step counter on the CPU.)
    """
    for name in ("item", "cpu", "numpy", "tolist"):
        original = getattr(torch.Tensor, name)

        def wrapper(self, *args, _original=original, **kwargs):
            if SYNC_CALLS["counting"] and threading.get_ident() == MAIN and self.device.type != "cpu":
                SYNC_CALLS["n"] += 1
            return _original(self, *args, **kwargs)

        setattr(torch.Tensor, name, wrapper)


def sync() -> None:
    if CUDA:
        torch.cuda.synchronize()


def make_model(width: int, depth: int):
    layers = []
    for _ in range(depth):
        layers += [torch.nn.Linear(width, width), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers, torch.nn.Linear(width, 10)).to(DEVICE)
    return model, torch.optim.Adam(model.parameters(), lr=1e-4)


def run_config(label: str, width: int, batch: int, depth: int, rounds: int, block: int, root: str) -> list:
    torch.manual_seed(0)
    model, opt = make_model(width, depth)
    x = torch.randn(batch, width, device=DEVICE)
    y = torch.randint(0, 10, (batch,), device=DEVICE)
    loss_fn = torch.nn.CrossEntropyLoss()
    exp = Experiment("bench", "gpu-sync", label, local_root=root)
    exp.run()
    step = [0]

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        step[0] += 1
        return loss

    def none(loss):
        pass

    def log_tensor(loss):
        exp.metrics.log(step=step[0], loss=loss)

    def collect_tensor(loss):
        exp.metrics.collect(loss=loss)
        if step[0] % 100 == 0:
            exp.metrics.flush(_aggregation="mean", step=step[0])

    def log_item(loss):
        exp.metrics.log(step=step[0], loss=loss.item())

    variants = [("no logging", none), ("ml-dash log(loss=tensor)", log_tensor),
                ("ml-dash collect + flush/100", collect_tensor), ("log(loss=loss.item())", log_item)]
    times = {name: [] for name, _ in variants}
    calls = {name: 0 for name, _ in variants}
    for name, fn in variants:  # warm-up: cuBLAS handles, pinned-memory pool, the writer thread
        for _ in range(block):
            fn(train_step())
    sync()
    for r in range(rounds):
        order = variants[r % len(variants):] + variants[:r % len(variants)]  # rotate to spread drift
        for name, fn in order:
            before = SYNC_CALLS["n"]
            sync()
            t0 = time.perf_counter()
            for _ in range(block):
                loss = train_step()
                SYNC_CALLS["counting"] = True
                fn(loss)
                SYNC_CALLS["counting"] = False
            sync()
            times[name].append((time.perf_counter() - t0) / block)
            calls[name] += SYNC_CALLS["n"] - before
    t0 = time.perf_counter()
    exp.complete()
    drain = time.perf_counter() - t0
    rows = len(exp.metrics.read())
    base = statistics.median(times["no logging"])
    out = []
    for name, _ in variants:
        med = statistics.median(times[name])
        out.append((label, name, med * 1e3, med / base, calls[name]))
    print(f"  [{label}] width={width} depth={depth} batch={batch}: {rounds} rounds x {block} steps per variant; "
          f"{rows} rows written; complete() took {drain * 1e3:.1f} ms", flush=True)
    return out


def main() -> None:
    instrument()
    print(f"torch {torch.__version__}; device: "
          + (f"CUDA {torch.cuda.get_device_name(0)}" if CUDA else "no CUDA available -> the same comparison on the CPU"))
    if CUDA:
        torch.backends.cuda.matmul.allow_tf32 = True
        configs = [("gpu-bound", 4096, 8192, 4, 10, 20), ("launch-bound", 256, 256, 3, 12, 50)]
    else:
        torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
        configs = [("cpu", 256, 128, 3, 8, 25)]
    results = []
    with tempfile.TemporaryDirectory(prefix="ml-dash-gpu-sync-") as root:
        for label, width, batch, depth, rounds, block in configs:
            results += run_config(label, width, batch, depth, rounds, block, root)
    print()
    header = f"{'model':<13} {'variant':<30} {'median step (ms)':>17} {'ratio':>7} {'syncing calls':>19}"
    print(header)
    print("-" * len(header))
    for label, name, ms, ratio, calls in results:
        print(f"{label:<13} {name:<30} {ms:>17.3f} {ratio:>7.3f} {calls:>19d}")
    print()
    for label, name, ms, ratio, calls in results:
        if name == "ml-dash log(loss=tensor)":
            verdict = "OK" if ratio <= 1.02 and calls == 0 else "ABOVE GOAL" if calls == 0 else "SYNC ON CALLER"
            print(f"{label}: ml-dash log(loss=tensor) ratio {ratio:.3f} (goal <= 1.02), "
                  f"{calls} item/cpu/numpy/tolist calls on a device tensor on the training thread -> {verdict}")


if __name__ == "__main__":
    main()
