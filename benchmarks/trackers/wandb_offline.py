"""W&B in offline mode: ``wandb.log(d, step=i)``; its Go service (``wandb-core``) is a child of the worker."""
from __future__ import annotations

import glob
import json
import os

from .base import Tracker, complete_steps


def _wandb_records(path: str):
    """Records of a W&B ``.wandb`` file: a 7-byte header (``:W&B``, magic 0xBEE1, version), then LevelDB-log
    framing: 32 KiB blocks of chunks with a 7-byte header (crc32, length, type FULL/FIRST/MIDDLE/LAST).
    (wandb 0.31 no longer ships a Python reader for it; the Go core writes it.)"""
    import struct

    with open(path, "rb") as f:
        data = f.read()
    ident, magic, _version = struct.unpack_from("<4sHB", data, 0)
    if ident != b":W&B" or magic != 0xBEE1:
        raise ValueError(f"{path}: not a .wandb file")
    block, pos, buf = 32768, 7, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # trailer padding at the end of a block
            pos += left
            continue
        _crc, length, kind = struct.unpack_from("<IHB", data, pos)
        pos += 7
        chunk = data[pos:pos + length]
        pos += length
        if kind == 1:
            yield chunk
        elif kind == 2:
            buf = chunk
        elif kind == 3:
            buf += chunk
        elif kind == 4:
            yield buf + chunk
            buf = b""
        elif kind == 0 and length == 0:
            continue
        else:
            raise ValueError(f"{path}: bad chunk type {kind} at {pos}")


class WandbOffline(Tracker):
    name = "wandb"
    label = "W&B offline"
    module = "wandb"
    dist = "wandb"
    call = "wandb.log(d, step=i)"

    def prepare(self, out, meta):
        for k, v in {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": out,
                     "WANDB_CACHE_DIR": os.path.join(out, ".cache"), "WANDB_CONFIG_DIR": os.path.join(out, ".config"),
                     "WANDB_DATA_DIR": os.path.join(out, ".data"), "WANDB_DISABLE_GIT": "true"}.items():
            os.environ[k] = v

    def setup(self, out, meta):
        import wandb

        run = wandb.init(mode="offline", dir=out, project="bench", name="run")
        meta["run_dir"] = run.dir
        return (lambda i, d: run.log(d, step=i)), run.finish

    def readback(self, out, meta):
        from wandb.proto import wandb_internal_pb2

        files = glob.glob(os.path.join(out, "wandb", "offline-run-*", "*.wandb"))
        if len(files) != 1:
            return {"stored": None, "how": f"unchecked: found {len(files)} .wandb files"}
        steps: dict[int, set] = {}
        for data in _wandb_records(files[0]):
            rec = wandb_internal_pb2.Record()
            rec.ParseFromString(data)
            if rec.WhichOneof("record_type") == "history":
                h = rec.history
                st = h.step.num if h.HasField("step") else None
                keys = {it.key or "/".join(it.nested_key) for it in h.item}
                if st is None:
                    for it in h.item:
                        if (it.key or "") == "_step":
                            st = int(json.loads(it.value_json))
                steps.setdefault(st, set()).update(keys)
        return {"stored": complete_steps(steps),
                "how": "history records of the offline .wandb file (leveldb-log framing, wandb_internal_pb2.Record)"}
