"""Files in an S3-compatible bucket (``--files s3://...``), against moto's S3 server on loopback, and its config."""
from __future__ import annotations

import hashlib
import uuid

import aiohttp
import pytest
from yarl import URL

from ml_dash.server import ServerConfig
from ml_dash.server.cli import main as server_cli
from ml_dash.server.config import ConfigError, parse_s3_url
from ml_dash.server.files.registry import open_file_store
from ml_dash.server.testing import running_server

from ..conftest import new_experiment

SKIP_REASON = "S3 file store tests need boto3 and moto[server] (pip install -r requirements-dev.txt)"
PREFIX = "team/ml"


@pytest.fixture(scope="module")
def s3_endpoint():
    """URL of a moto S3 server (a real HTTP server in a thread) on a free loopback port."""
    pytest.importorskip("boto3", reason=SKIP_REASON)
    moto_server = pytest.importorskip("moto.server", reason=SKIP_REASON)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_endpoint, monkeypatch, tmp_path):
    """A fresh bucket, and AWS_* variables for it that boto3's chain (here and in server subprocesses) picks up."""
    import boto3

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    name = f"ml-dash-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket=name)
    yield name
    s3.close()


def object_keys(s3_endpoint: str, bucket: str) -> list[str]:
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    try:
        return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    finally:
        s3.close()


@pytest.fixture
async def s3_client(make_client, bucket, s3_endpoint):
    return await make_client(files=f"s3://{bucket}/{PREFIX}", s3_endpoint=s3_endpoint)


def spooled(tmp_path) -> list:
    return [p for p in (tmp_path / "data" / "spool").rglob("*") if p.is_file()]


async def test_s3_round_trip_is_byte_identical(s3_client, bucket, s3_endpoint, tmp_path):
    """A multipart-sized upload lands under <prefix>/blobs/ab/cdef… and downloads unchanged with the usual headers."""
    experiment_id = await new_experiment(s3_client)
    payload = hashlib.sha256(b"seed").digest() * (9 * 2**20 // 32 + 7)  # > 8 MiB: multipart upload, many chunks
    sha = hashlib.sha256(payload).hexdigest()
    url = f"/api/v1/experiments/{experiment_id}/files/checkpoints/model.pt"
    answer = await s3_client.put(url, data=payload)
    assert await answer.json() == {"path": "checkpoints/model.pt", "size": len(payload), "sha256": sha}
    assert object_keys(s3_endpoint, bucket) == [f"{PREFIX}/blobs/{sha[:2]}/{sha[2:]}"]
    download = await s3_client.get(url)
    assert download.status == 200 and await download.read() == payload
    assert download.headers["Content-Type"] == "application/octet-stream"
    assert download.headers["X-Content-SHA256"] == sha
    assert int(download.headers["Content-Length"]) == len(payload)
    head = await s3_client.head(url)
    assert head.status == 200 and int(head.headers["Content-Length"]) == len(payload)
    assert not spooled(tmp_path)


async def test_s3_identical_content_is_stored_once(s3_client, bucket, s3_endpoint):
    """Two paths with the same bytes share one object; both download."""
    experiment_id = await new_experiment(s3_client)
    payload = b"same bytes " * 1000
    for path in ("a.bin", "dir/b.bin"):
        assert (await s3_client.put(f"/api/v1/experiments/{experiment_id}/files/{path}", data=payload)).status == 200
    assert len(object_keys(s3_endpoint, bucket)) == 1
    for path in ("a.bin", "dir/b.bin"):
        assert await (await s3_client.get(f"/api/v1/experiments/{experiment_id}/files/{path}")).read() == payload


async def test_s3_oversize_upload_is_413_and_leaves_nothing(make_client, bucket, s3_endpoint, tmp_path):
    """Past max_file_bytes the upload is 413, with no object in the bucket and no spooled file left."""
    client = await make_client(files=f"s3://{bucket}/{PREFIX}", s3_endpoint=s3_endpoint, max_file_bytes=1000)
    experiment_id = await new_experiment(client)
    answer = await client.put(f"/api/v1/experiments/{experiment_id}/files/big.bin", data=b"x" * 5000)
    assert answer.status == 413
    assert object_keys(s3_endpoint, bucket) == []
    assert not spooled(tmp_path)


@pytest.mark.parametrize("path", ["..%2F..%2Fetc%2Fpasswd", "%2E%2E/secret", "%2Fabs", "a%5Cb", "nul%00byte"])
async def test_s3_path_escapes_are_rejected(s3_client, bucket, s3_endpoint, path):
    """Escaping names are 400 for upload and download, and nothing reaches the bucket."""
    experiment_id = await new_experiment(s3_client)
    url = URL(f"/api/v1/experiments/{experiment_id}/files/{path}", encoded=True)
    put, get = await s3_client.put(url, data=b"x"), await s3_client.get(url)
    assert put.status == 400 and get.status == 400, (put.status, get.status)
    assert object_keys(s3_endpoint, bucket) == []


async def test_s3_object_gone_from_bucket_is_404(s3_client, bucket, s3_endpoint):
    """A file row whose object was deleted from the bucket downloads as 404, not 500."""
    import boto3

    experiment_id = await new_experiment(s3_client)
    url = f"/api/v1/experiments/{experiment_id}/files/gone.txt"
    assert (await s3_client.put(url, data=b"soon gone")).status == 200
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    for key in object_keys(s3_endpoint, bucket):
        s3.delete_object(Bucket=bucket, Key=key)
    s3.close()
    assert (await s3_client.get(url)).status == 404


async def test_s3_missing_bucket_fails_at_startup(bucket, s3_endpoint, tmp_path):
    """A bucket that does not exist is a ConfigError naming --files when the store opens."""
    config = ServerConfig(data_dir=str(tmp_path), files="s3://no-such-bucket-here/x", s3_endpoint=s3_endpoint)
    store = open_file_store(config)
    with pytest.raises(ConfigError, match="--files s3://no-such-bucket-here/x"):
        await store.open()
    await store.close()


async def test_workers_share_the_s3_store(bucket, s3_endpoint, tmp_path):
    """A real `ml-dash server --workers 2 --files s3://...`: one upload, and every download (any worker) matches."""
    payload = bytes(range(256)) * 4096
    args = ["--files", f"s3://{bucket}/{PREFIX}", "--s3-endpoint", s3_endpoint]
    with running_server(tmp_path / "data", workers=2, args=args) as base_url:
        # force_close: a new TCP connection per request, so SO_REUSEPORT may hand each one to either worker
        async with aiohttp.ClientSession(base_url, connector=aiohttp.TCPConnector(force_close=True)) as session:
            experiment_id = await new_experiment(session)
            url = f"/api/v1/experiments/{experiment_id}/files/shared/weights.bin"
            async with session.put(url, data=payload) as answer:
                assert answer.status == 200, await answer.text()
            for _ in range(8):
                async with session.get(url) as download:
                    assert download.status == 200 and await download.read() == payload
                    assert download.headers["X-ML-Dash-Worker"]
    assert len(object_keys(s3_endpoint, bucket)) == 1


@pytest.mark.parametrize("value", ["gs://bucket/x", "bucket/x", "s3://", "s3://a/x", "s3://bad bucket/x",
                                   "s3://bucket/../x", "s3://bucket/x?versionId=1", "/shared/files"])
def test_bad_files_value_is_rejected_naming_the_option(value):
    """Anything but s3://bucket[/prefix] is a ConfigError that names --files."""
    with pytest.raises(ConfigError, match="--files"):
        ServerConfig(files=value).check()


def test_s3_url_parsing_and_env_precedence(monkeypatch):
    """Prefixes are normalised; ML_DASH_FILES / ML_DASH_S3_ENDPOINT apply unless an argument is given."""
    pytest.importorskip("boto3", reason=SKIP_REASON)
    assert parse_s3_url("s3://bucket") == ("bucket", "")
    assert parse_s3_url("s3://my.bucket//a/b/") == ("my.bucket", "a/b")
    monkeypatch.setenv("ML_DASH_FILES", "s3://from-env/p")
    monkeypatch.setenv("ML_DASH_S3_ENDPOINT", "http://minio:9000")
    config = ServerConfig.resolve()
    assert (config.files, config.s3_endpoint) == ("s3://from-env/p", "http://minio:9000")
    assert ServerConfig.resolve(files="s3://from-arg").files == "s3://from-arg"


def test_s3_endpoint_needs_files_and_a_url():
    """--s3-endpoint alone, or one that is not an http(s) URL, is refused."""
    with pytest.raises(ConfigError, match="--s3-endpoint"):
        ServerConfig(s3_endpoint="http://minio:9000").check()
    with pytest.raises(ConfigError, match="--s3-endpoint"):
        ServerConfig(files="s3://bucket", s3_endpoint="minio:9000").check()


def test_cli_reports_a_bad_files_value(capsys, tmp_path):
    """`ml-dash server --files ...` with a bad value exits 2 with a message naming --files."""
    assert server_cli(["--data", str(tmp_path), "--files", "ftp://nope"]) == 2
    assert "--files" in capsys.readouterr().err


async def test_s3_blobs_listed_by_age_and_deleted_for_gc(bucket, s3_endpoint, tmp_path):
    """stored_before lists the bucket's blobs (paged, prefix kept) older than a time; delete removes one."""
    import time

    store = open_file_store(ServerConfig(data_dir=str(tmp_path), files=f"s3://{bucket}/{PREFIX}",
                                         s3_endpoint=s3_endpoint))
    await store.open()

    async def chunks(payload):
        yield payload

    try:
        shas = sorted([(await store.put(chunks(f"blob {i}".encode()), 100))[0] for i in range(3)])
        assert sorted([sha async for sha in store.stored_before(time.time() + 60)]) == shas
        assert [sha async for sha in store.stored_before(time.time() - 3600)] == []
        await store.delete(shas[0])
        await store.delete(shas[0])  # gone already is fine
        assert sorted([sha async for sha in store.stored_before(time.time() + 60)]) == shas[1:]
        assert sorted(object_keys(s3_endpoint, bucket)) == sorted(store.key_of(s) for s in shas[1:])
    finally:
        await store.close()
