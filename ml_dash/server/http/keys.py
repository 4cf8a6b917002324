"""The application's typed keys: a leaf, so that every view module can import them without importing the app."""
from __future__ import annotations

from aiohttp import web

from ml_dash.server.alerts.engine import AlertEngine
from ml_dash.server.config import ServerConfig
from ml_dash.server.files.base import FileStore
from ml_dash.server.http.batch_order import BatchOrder
from ml_dash.server.ingest_pool import DecodePool
from ml_dash.server.storage.base import Storage

CONFIG_KEY = web.AppKey("config", ServerConfig)
STORAGE_KEY = web.AppKey("storage", Storage)
BLOBS_KEY = web.AppKey("blobs", FileStore)
DECODER_KEY = web.AppKey("decoder", DecodePool)
ORDER_KEY = web.AppKey("batch_order", BatchOrder)
ALERTS_KEY = web.AppKey("alerts", AlertEngine)
