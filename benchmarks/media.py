"""Media logging costs (docs/media.md), each beside a baseline measured in the same run.

    .venv/bin/python benchmarks/media.py [--steps 20000] [--hist-max 100000000]

1. Caller cost of ``Image(64x64x3 uint8)``: median and p99.9 over 200k calls; baseline: ``arr.copy()`` alone and
   ``exp.metrics.log(loss=…)``.
2. A CPU training loop (a fixed numpy matmul per step) with 16 such images logged per step vs the same loop without.
3. ``Histogram`` caller cost against tensor size (numpy copy, ``copy=False``, a torch CPU tensor's clone).
4. Bytes on disk for 1,000 images (packed segment + index) vs one PNG file per image, and the objects the server's
   file store holds for them (blobs) vs one per image.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ml_dash  # noqa: E402
from ml_dash import Histogram, Image  # noqa: E402


def percentiles(samples_ns):
    samples = sorted(samples_ns)
    return statistics.median(samples) / 1000, samples[int(len(samples) * 0.999)] / 1000


def timed(fn, n):
    out = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        fn()
        out.append(clock() - t0)
    return out


def caller_cost(n=200_000):
    arr = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    root = tempfile.mkdtemp()
    exp = ml_dash.Experiment("b", "b", "caller", local_root=root, system_metrics=False, capture_environment=False)
    exp.run()
    rows = [("arr.copy() (baseline)", timed(arr.copy, n)),
            ("exp.metrics.log(loss=1.0) (baseline)", timed(lambda: exp.metrics.log(loss=1.0), n)),
            ("Image(arr)", timed(lambda: Image(arr), n))]
    img = Image(arr)
    rows.append(("exp.media.log(img=<made>) (queue only)", timed(lambda: exp.media.log(img=img), 20_000)))
    exp.complete()
    print("\n## 1. Caller cost, 64x64x3 uint8\n\n| call | median µs | p99.9 µs |\n|---|---|---|")
    for name, samples in rows:
        print("| %s | %.2f | %.2f |" % (name, *percentiles(samples)))


def training_loop(steps, size):
    rng = np.random.default_rng(0)
    a, b = rng.random((size, size)), rng.random((size, size))
    batch = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(16)]

    def run(with_media):
        root = tempfile.mkdtemp()
        exp = ml_dash.Experiment("b", "b", "loop", local_root=root, system_metrics=False, capture_environment=False)
        exp.run()
        t0 = time.perf_counter()
        for step in range(steps):
            c = a @ b  # the "training step"
            a[0, 0] = c[0, 0] * 1e-9
            exp.metrics.log(step=step, loss=float(c[0, 0]))
            if with_media:
                exp.media.log(step=step, samples=[Image(x) for x in batch])
        loop = time.perf_counter() - t0
        exp.complete()
        return loop, time.perf_counter() - t0

    run(False)  # warm-up
    base = min(run(False)[0] for _ in range(2))
    media, total = run(True)
    print(f"\n## 2. CPU training loop ({size}x{size} matmul per step), {steps} steps, 16 images of 64x64x3 per step\n")
    print("| loop | seconds | per step µs |\n|---|---|---|")
    print(f"| metrics only (baseline) | {base:.3f} | {base / steps * 1e6:.1f} |")
    print(f"| + 16 images/step | {media:.3f} | {media / steps * 1e6:.1f} |")
    print(f"\nslowdown of the loop: {100 * (media / base - 1):.1f}% (the writer encodes on its own thread; "
          f"run incl. drain at complete(): {total:.2f} s)")


def histogram_cost(max_size):
    sizes = [s for s in (10**6, 10**7, 10**8) if s <= max_size]
    print("\n## 3. Histogram caller cost by size (median of 5, ms)\n")
    print("| elements | values.copy() (baseline) | Histogram(numpy) | Histogram(numpy, copy=False) | Histogram(torch CPU) |")
    print("|---|---|---|---|---|")
    try:
        import torch
    except ImportError:
        torch = None
    for size in sizes:
        x = np.random.default_rng(0).standard_normal(size, dtype=np.float32)
        cols = [timed(x.copy, 5), timed(lambda: Histogram(x), 5), timed(lambda: Histogram(x, copy=False), 5)]
        if torch is not None:
            t = torch.from_numpy(x)
            cols.append(timed(lambda: Histogram(t), 5))
        print(f"| {size:,} | " + " | ".join(f"{statistics.median(c) / 1e6:.3f}" for c in cols) + " |")


def storage_footprint():
    from ml_dash.format.codecs import encode_png
    from ml_dash.server.testing import running_server

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(1000)]
    with tempfile.TemporaryDirectory() as root:
        per_file = os.path.join(root, "one-file-per-image")
        os.makedirs(per_file)
        for i, img in enumerate(images):
            with open(os.path.join(per_file, f"{i:04d}.png"), "wb") as f:
                f.write(encode_png(img))
        with running_server(os.path.join(root, "server")) as url:
            exp = ml_dash.Experiment("b", "b", "disk", local_root=os.path.join(root, "logs"), remote=url,
                                     system_metrics=False, capture_environment=False)
            with exp.run():
                for step, img in enumerate(images):
                    exp.media.log(step=step, img=Image(img))
            packed = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(os.path.join(exp.local_path, "media"))
                         for f in fs) + os.path.getsize(os.path.join(exp.local_path, "media.jsonl"))
            files = sum(os.path.getsize(os.path.join(per_file, f)) for f in os.listdir(per_file))
            blobs = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(root, "server", "blobs")) for f in fs
                     if os.path.basename(d) != "tmp"]
            items = len(list(ml_dash.Api(remote=url).experiments()[0].media_keys()))
        block = 4096
        used = lambda sizes: sum(-(-s // block) * block for s in sizes)  # noqa: E731
        print("\n## 4. 1,000 images of 64x64x3\n\n| layout | files / objects | bytes | bytes in 4 KiB blocks |")
        print("|---|---|---|---|")
        print(f"| one PNG file per image (baseline) | 1000 | {files:,} | "
              f"{used(os.path.getsize(os.path.join(per_file, f)) for f in os.listdir(per_file)):,} |")
        seg_files = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(exp.local_path, "media")) for f in fs]
        print(f"| packed segments + media.jsonl (local) | {len(seg_files) + 1} | {packed:,} | "
              f"{used([*map(os.path.getsize, seg_files), os.path.getsize(os.path.join(exp.local_path, 'media.jsonl'))]):,} |")
        print(f"| server file store (one blob per upload batch) | {len(blobs)} | "
              f"{sum(map(os.path.getsize, blobs)):,} | {used(map(os.path.getsize, blobs)):,} |")
        assert items == 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=2_000)
    parser.add_argument("--matmul", type=int, default=400, help="side of the matrices multiplied per step")
    parser.add_argument("--hist-max", type=int, default=10**8)
    args = parser.parse_args()
    os.environ.setdefault("ML_DASH_SYSTEM_METRICS", "0")
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, {os.cpu_count()} CPUs")
    caller_cost()
    training_loop(args.steps, args.matmul)
    histogram_cost(args.hist_max)
    storage_footprint()
