"""File upload/download through the content-addressed blob store, and path-escape attempts."""
from __future__ import annotations

import hashlib

import pytest
from yarl import URL

from ml_dash.server.errors import BadRequest
from ml_dash.server.files.base import check_file_path

from ..conftest import new_experiment


async def test_file_round_trip_and_listing(client, tmp_path):
    """Uploaded bytes download unchanged, are listed, and are stored by SHA-256 (identical content once)."""
    experiment_id = await new_experiment(client)
    payload = bytes(range(256)) * 1000
    sha = hashlib.sha256(payload).hexdigest()
    url = f"/api/v1/experiments/{experiment_id}/files/checkpoints/model.pt"
    answer = await (await client.put(url, data=payload)).json()
    assert answer == {"path": "checkpoints/model.pt", "size": len(payload), "sha256": sha}
    await client.put(f"/api/v1/experiments/{experiment_id}/files/copy.pt", data=payload)
    download = await client.get(url)
    assert download.status == 200 and await download.read() == payload
    listed = await (await client.get(f"/api/v1/experiments/{experiment_id}/files")).json()
    assert [f["path"] for f in listed["files"]] == ["checkpoints/model.pt", "copy.pt"]
    blobs = [p for p in (tmp_path / "data" / "blobs").rglob("*") if p.is_file()]
    assert [p.name for p in blobs] == [sha[2:]]


async def test_unknown_file_is_404(client):
    """Downloading a path never uploaded is 404."""
    experiment_id = await new_experiment(client)
    assert (await client.get(f"/api/v1/experiments/{experiment_id}/files/missing.txt")).status == 404


@pytest.mark.parametrize("path", ["..%2F..%2Fetc%2Fpasswd", "%2E%2E/secret", "a/%2e%2e/%2e%2e/b", "%2Fabs",
                                  "a%5Cb", "nul%00byte", "%2E/x"])
async def test_path_escapes_are_rejected(client, path):
    """Encoded '..', absolute paths, backslashes and NUL are 400 for upload and download."""
    experiment_id = await new_experiment(client)
    url = URL(f"/api/v1/experiments/{experiment_id}/files/{path}", encoded=True)
    put = await client.put(url, data=b"x")
    get = await client.get(url)
    assert put.status == 400 and get.status == 400, (put.status, get.status)


def test_check_file_path_normalises_and_rejects():
    """Duplicate slashes collapse; escapes raise BadRequest."""
    assert check_file_path("a//b/c.txt") == "a/b/c.txt"
    for bad in ["", "/etc/passwd", "a/../b", "..", "a\\b", "a\x00b", "C:stuff", "x" * 2000]:
        with pytest.raises(BadRequest):
            check_file_path(bad)


async def test_oversize_file_is_413(make_client, tmp_path):
    """A file larger than max_file_bytes is refused and leaves no temporary file behind."""
    client = await make_client(max_file_bytes=1000)
    experiment_id = await new_experiment(client)
    answer = await client.put(f"/api/v1/experiments/{experiment_id}/files/big.bin", data=b"x" * 5000)
    assert answer.status == 413
    assert not [p for p in (tmp_path / "data" / "blobs").rglob("*") if p.is_file()]
