"""``Api(remote=...)`` asks for compressed answers (zstd, else gzip) and reads them: the same records and series as
an uncompressed read, with the answers having come compressed."""
from __future__ import annotations

import numpy as np
import pytest

from ml_dash import Api
from ml_dash.query import remote


@pytest.fixture
def encodings(monkeypatch):
    """The Content-Encoding of every answer the reader decoded."""
    seen = []
    decoded = remote._decoded

    def spy(answer):
        seen.append(answer.headers.get("Content-Encoding", "identity"))
        return decoded(answer)

    monkeypatch.setattr(remote, "_decoded", spy)
    return seen


def _read(base_url):
    api = Api(remote=base_url)
    records = api.experiments(order_by="prefix")
    histories = [r.history(keys=["loss", "val/loss"]).to_numpy() for r in records]
    return [r.to_dict() for r in records], histories, records[0].step_times([0, 10, 199])


@pytest.mark.parametrize("encoding", ["gzip", "zstd"])
def test_compressed_round_trip(logged, encodings, monkeypatch, encoding):
    pytest.importorskip("zstandard") if encoding == "zstd" else None
    base_url, _ = logged
    monkeypatch.setattr(remote, "ACCEPT_ENCODING", "identity")
    plain = _read(base_url)
    assert set(encodings) == {"identity"}
    encodings.clear()
    monkeypatch.setattr(remote, "ACCEPT_ENCODING", encoding)
    packed = _read(base_url)
    assert encoding in encodings  # the experiments page and the series are past the server's MIN_BYTES
    assert set(encodings) <= {encoding, "identity"}  # small answers stay plain
    assert packed[0] == plain[0]
    for mine, theirs in zip(packed[1], plain[1]):
        assert np.array_equal(mine, theirs, equal_nan=True)
    assert all(np.array_equal(a, b) for a, b in zip(packed[2], plain[2]))


def test_default_accepts_zstd_when_installed():
    pytest.importorskip("zstandard")
    assert remote.ACCEPT_ENCODING == "zstd, gzip"


def test_unknown_encoding_is_a_clear_error():
    class Answer:
        headers = {"Content-Encoding": "br"}

        def read(self):
            return b"..."

    with pytest.raises(remote.ApiError, match="encoding this client cannot read: br"):
        remote._decoded(Answer())
