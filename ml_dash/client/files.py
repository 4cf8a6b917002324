"""``exp.files``: save and load artefacts with the format chosen by extension; writes are atomic."""
from __future__ import annotations

import io
import json
import os
import sys
from typing import Any

from ml_dash.format.layout import TMP_MARK as _TMP_MARK
from ml_dash.format.layout import atomic_write, saved_files
from ml_dash.format.names import check_segments, safe_join

_TEXT_EXTENSIONS = {".txt", ".md", ".csv", ".log", ".yaml", ".yml", ".html", ".toml", ".ini", ".tsv"}


def _pickle():
    import pickle  # imported when a pickle is met, like numpy and torch

    return pickle


def _numpy():
    import numpy  # imported when a .npy/.npz file is met: it would double the cost of ``import ml_dash``

    return numpy


def _json_default(value: Any) -> Any:
    np = sys.modules.get("numpy")  # a numpy value exists only once numpy is imported
    if np is not None and isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    from ml_dash.client.values import is_torch_tensor, to_jsonable

    if is_torch_tensor(value):
        return to_jsonable(value, "files.save", "data")
    raise TypeError(f"files.save: {type(value).__name__} is not JSON serializable")


def _torch():
    import torch  # optional dependency, imported only when a .pt/.pth file is met

    return torch


def _encode(data: Any, extension: str) -> bytes:
    if extension == ".json":
        # stdlib json, not orjson: it keeps NaN/Infinity and json.load reads them back
        return json.dumps(data, indent=2, default=_json_default).encode()
    if extension in (".pkl", ".pickle"):
        return _pickle().dumps(data, protocol=-1)
    if extension in (".pt", ".pth"):
        buffer = io.BytesIO()
        _torch().save(data, buffer)
        return buffer.getvalue()
    if extension == ".npy":
        np = _numpy()
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(data), allow_pickle=False)
        return buffer.getvalue()
    if extension == ".npz":
        np = _numpy()
        buffer = io.BytesIO()
        if isinstance(data, dict):
            np.savez(buffer, **data)
        else:
            np.savez(buffer, data)
        return buffer.getvalue()
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):
        return data.encode()
    if extension in _TEXT_EXTENSIONS:
        # Pickle bytes in a text file would not load back as text: refuse rather than write something unreadable.
        raise TypeError(f"files.save: data= must be str or bytes for a {extension} file, got {type(data).__name__} "
                        f"(convert it yourself, e.g. str(data), or save it as .json or .pkl)")
    return _pickle().dumps(data, protocol=-1)


class FileManager:
    """Files under ``<experiment>/files/<namespace>/``."""

    def __init__(self, root: str, namespace: str = "") -> None:
        self._root = root  # the experiment's files/ directory
        self._ns = namespace

    def __call__(self, namespace: str) -> "FileManager":
        ns = check_segments("namespace", namespace)
        return FileManager(self._root, f"{self._ns}/{ns}" if self._ns else ns)

    @property
    def directory(self) -> str:
        return safe_join(self._root, self._ns, "namespace") if self._ns else self._root

    def _path(self, filename: str) -> str:
        name = check_segments("filename", filename)
        if _TMP_MARK in name:
            raise ValueError(f"filename={filename!r} uses a name reserved for temporary files")
        return safe_join(self._root, f"{self._ns}/{name}" if self._ns else name, "filename")

    def save(self, data: Any, filename: str) -> str:
        """Save ``data``; the format follows the extension (json, pkl, pt/pth, npy/npz, bytes, text, else pickle).

        Text extensions (``.txt``, ``.md``, ``.csv``, ...) take ``str`` or ``bytes`` only (``TypeError`` otherwise)."""
        path = self._path(filename)
        atomic_write(path, _encode(data, os.path.splitext(path)[1].lower()))
        return path

    def save_pkl(self, data: Any, filename: str) -> str:
        """Save as pickle, adding ``.pkl`` unless the name already ends in it."""
        filename = check_segments("filename", filename)
        return self.save(data, filename if filename.endswith((".pkl", ".pickle")) else filename + ".pkl")

    def load(self, filename: str) -> Any:
        """Load a file saved by ``save`` (local files only: pickles are never accepted from the network)."""
        path = self._path(filename)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"files.load: no file {filename!r} in {self.directory}")
        extension = os.path.splitext(path)[1].lower()
        if extension == ".json":
            with open(path, "rb") as f:
                return json.load(f)
        if extension in (".pkl", ".pickle"):
            with open(path, "rb") as f:
                return _pickle().load(f)
        if extension in (".pt", ".pth"):
            return _torch().load(path, weights_only=False)
        if extension == ".npy":
            return _numpy().load(path, allow_pickle=False)
        if extension == ".npz":
            with _numpy().load(path, allow_pickle=False) as archive:
                return {k: archive[k] for k in archive.files}
        with open(path, "rb") as f:
            raw = f.read()
        if extension in _TEXT_EXTENSIONS:
            return raw.decode()
        if raw[:1] == b"\x80" and raw[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05") and raw.endswith(b"."):
            try:  # save() fell back to pickle for this object; this is the user's own local file
                return _pickle().loads(raw)
            except Exception:
                pass
        return raw

    def load_torch(self, filename: str) -> Any:
        """Load a PyTorch checkpoint, adding ``.pt`` when the name has no extension."""
        filename = check_segments("filename", filename)
        return self.load(filename if os.path.splitext(filename)[1] else filename + ".pt")

    def exists(self, filename: str) -> bool:
        return os.path.isfile(self._path(filename))

    def list(self) -> list[str]:
        """Files in this namespace, as sorted relative paths (sub-namespaces included, e.g. ``checkpoints/a.pt``)."""
        return [path for path, _st in saved_files(self.directory)]
