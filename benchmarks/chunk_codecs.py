"""Which codec for metric chunk columns: bytes per point, encode and decode µs per 1k points, per candidate.

The candidates code one chunk's columns (float64 steps, values and timestamps; int8 kinds) the way the server stores
them, one BLOB per column: ``raw`` (the old layout), plain ``zstd``, a transform (delta or delta-of-delta of the
float64 bit patterns, XOR with the previous value, zigzag) with a byte shuffle and then ``zstd``/``lz4``, and the
same through ``blosc2`` (its shuffle/bitshuffle and codecs in C). The series (``make_series``) are the ones
``benchmarks/scale.py`` uploads:

- ``random``: uniform float64 values (``numpy.random.random``: ~52 bits of every value are noise);
- ``smooth``: a slowly moving float32 loss (what ``tensor.item()`` gives), decaying, with a little noise;
- ``lr``: a float64 cosine learning-rate schedule.

Every series has steps +1 and timestamps a training loop's ``time.time()`` would give: about 4 ms apart, with a
random walk of ~30 µs per step. Chunks are ``--chunk`` points (the server merges batches into chunks of 4096 and
more). ``python benchmarks/chunk_codecs.py [--points 1000000] [--chunk 5000]``; needs ``zstandard``, and uses
``lz4``/``blosc2`` when installed.
"""
from __future__ import annotations

import argparse
import time
from typing import Callable

import numpy as np

T0 = 1.7e9


def make_series(kind: str, n: int, seed: int = 0, start: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, values, timestamps) of ``n`` points from step ``start`` of a ``kind`` series (see the module doc)."""
    rng = np.random.default_rng(seed)
    steps = np.arange(start, start + n, dtype=np.float64)
    stamps = T0 + start * 0.004 + np.cumsum(0.004 + rng.normal(0, 30e-6, n))
    if kind == "random":
        values = rng.random(n)
    elif kind == "smooth":
        values = (2.0 * np.exp(-steps / 3e5) + 0.1 + rng.normal(0, 1e-4, n)).astype(np.float32).astype(np.float64)
    elif kind == "lr":
        values = 1e-3 * 0.5 * (1 + np.cos(np.pi * steps / 1e8))
    else:
        raise ValueError(f"kind must be random, smooth or lr, got {kind!r}")
    return steps, values, stamps


# --- transforms (int64 views of float64 bit patterns; numpy integer arithmetic wraps, so every one is invertible) ---

def delta(x: np.ndarray) -> np.ndarray:
    return np.diff(x, prepend=np.int64(0))


def zigzag(x: np.ndarray) -> np.ndarray:
    return ((x << 1) ^ (x >> 63)).view(np.uint64)


def xor(x: np.ndarray) -> np.ndarray:
    out = x.copy()
    out[1:] ^= x[:-1]
    return out


def shuffle(x: np.ndarray) -> bytes:
    return np.ascontiguousarray(x.view(np.uint8).reshape(len(x), x.itemsize).T).tobytes()


TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": lambda x: x,
    "delta": lambda x: zigzag(delta(x)),
    "dod": lambda x: zigzag(delta(delta(x))),
    "xor": xor,
}


def candidates() -> dict[str, Callable[[np.ndarray, str], tuple[bytes, Callable[[], object]]]]:
    """name → f(column array, transform) → (encoded bytes, a decode thunk doing the decoder's work)."""
    import zstandard

    out = {}
    z1, zd = zstandard.ZstdCompressor(level=1), zstandard.ZstdDecompressor()
    z3 = zstandard.ZstdCompressor(level=3)

    def zstd_shuffled(comp):
        def run(x, transform):
            ints = x.view(np.int64) if x.dtype.itemsize == 8 else x
            coded = TRANSFORMS[transform](ints) if x.dtype.itemsize == 8 else ints
            blob = comp.compress(shuffle(coded) if x.dtype.itemsize == 8 else coded.tobytes())

            def decode():
                raw = np.frombuffer(zd.decompress(blob), np.uint8)
                if x.dtype.itemsize != 8:
                    return raw
                z = np.ascontiguousarray(raw.reshape(8, -1).T).view(np.uint64).ravel()
                v = ((z >> np.uint64(1)).view(np.int64) ^ -(z & np.uint64(1)).view(np.int64))
                return np.cumsum(np.cumsum(v)) if transform == "dod" else np.cumsum(v)
            return blob, decode
        return run

    out["zstd1+shuffle"] = zstd_shuffled(z1)
    out["zstd3+shuffle"] = zstd_shuffled(z3)

    def zstd_plain(x, transform):
        blob = z1.compress(x.tobytes())
        return blob, lambda: np.frombuffer(zd.decompress(blob), x.dtype)
    out["zstd1 plain"] = zstd_plain
    try:
        import lz4.frame

        def lz4_shuffled(x, transform):
            ints = x.view(np.int64) if x.dtype.itemsize == 8 else x
            data = shuffle(TRANSFORMS[transform](ints)) if x.dtype.itemsize == 8 else ints.tobytes()
            blob = lz4.frame.compress(data)
            return blob, lambda: lz4.frame.decompress(blob)
        out["lz4+shuffle"] = lz4_shuffled
    except ImportError:
        pass
    try:
        import blosc2

        def blosc(codec, filt):
            def run(x, transform):
                ints = x.view(np.int64) if x.dtype.itemsize == 8 else x
                data = TRANSFORMS[transform](ints) if x.dtype.itemsize == 8 else ints
                blob = blosc2.compress2(np.ascontiguousarray(data), typesize=data.dtype.itemsize, clevel=5,
                                        codec=codec, filters=[filt], nthreads=1)
                return blob, lambda: blosc2.decompress2(blob)
            return run
        out["blosc2 zstd+shuffle"] = blosc(blosc2.Codec.ZSTD, blosc2.Filter.SHUFFLE)
        out["blosc2 zstd+bitshuffle"] = blosc(blosc2.Codec.ZSTD, blosc2.Filter.BITSHUFFLE)
        out["blosc2 lz4+shuffle"] = blosc(blosc2.Codec.LZ4, blosc2.Filter.SHUFFLE)
    except ImportError:
        pass
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=5000)
    args = parser.parse_args()
    print(f"{args.points:,} points per series in chunks of {args.chunk:,}; bytes/point per column; µs per 1k points")
    print(f"| series | column | candidate | transform | B/pt | encode µs/1k | decode µs/1k |")
    print("|---|---|---|---|---:|---:|---:|")
    for kind in ("random", "smooth", "lr"):
        steps, values, stamps = make_series(kind, args.points)
        columns = {"steps": steps, "values": values, "timestamps": stamps}
        for column, array in columns.items():
            transforms = ["delta", "dod"] if column != "values" else ["none", "xor", "delta", "dod"]
            for name, run in candidates().items():
                for transform in (transforms if "plain" not in name else ["none"]):
                    size = enc = dec = 0.0
                    for lo in range(0, len(array), args.chunk):
                        part = np.ascontiguousarray(array[lo:lo + args.chunk])
                        t = time.perf_counter()
                        blob, decode = run(part, transform)
                        enc += time.perf_counter() - t
                        t = time.perf_counter()
                        decode()
                        dec += time.perf_counter() - t
                        size += len(blob)
                    n = len(array) / 1000
                    print(f"| {kind} | {column} | {name} | {transform} | {size / len(array):.3f} | "
                          f"{enc * 1e6 / n:.1f} | {dec * 1e6 / n:.1f} |", flush=True)
            if kind == "random" and column == "values":
                pass
        print(f"| {kind} | raw (old layout) | - | - | {8 * 3 + 1} | 0 | 0 |")


if __name__ == "__main__":
    main()
