"""The blob store a server configuration names: a local directory by default, S3 for ``--files s3://``."""
from __future__ import annotations

import os

from ml_dash.server.config import ServerConfig, parse_s3_url
from ml_dash.server.files.base import FileStore
from ml_dash.server.files.local import BlobStore


def open_file_store(config: ServerConfig) -> FileStore:
    """The store ``config.files`` names: unset → ``<data>/blobs``; ``s3://bucket/prefix`` → S3 (imports boto3)."""
    if config.files is None:
        return BlobStore(config.data_dir)
    from ml_dash.server.files.s3 import S3BlobStore

    bucket, prefix = parse_s3_url(config.files)
    return S3BlobStore(bucket, prefix, endpoint=config.s3_endpoint, spool_dir=os.path.join(config.data_dir, "spool"))
