"""``open_storage``: the backend is chosen by the URL's scheme; backends are imported only when chosen."""
from __future__ import annotations

from ml_dash.server.config import SERIES_CACHE_MB, SQLITE_READERS, ConfigError
from ml_dash.server.storage.base import Storage


def open_storage(db_url: str | None, default_sqlite_path: str, series_cache_mb: float = SERIES_CACHE_MB.default,
                 sqlite_readers: int = SQLITE_READERS.default) -> Storage:
    """Pick a backend from a URL: none or ``sqlite:///path`` → SQLite; ``postgresql://`` / ``postgres://`` → PostgreSQL.
    ``series_cache_mb`` and ``sqlite_readers``: ``ServerConfig``'s (the defaults are the settings')."""
    if db_url is None or db_url in ("", "sqlite://"):
        path = default_sqlite_path
    elif db_url.startswith("sqlite:///"):
        path = db_url[len("sqlite:///"):]
    elif db_url.startswith(("postgres://", "postgresql://")):
        from ml_dash.server.storage.postgres.storage import PostgresStorage

        return PostgresStorage(db_url, series_cache_mb=series_cache_mb)
    else:
        raise ConfigError(f"unsupported --db URL {db_url!r}; expected sqlite:///path/to/file.sqlite3 or "
                          "postgresql://user:password@host/database")
    from ml_dash.server.storage.sqlite.storage import SQLiteStorage

    return SQLiteStorage(path, sqlite_readers, series_cache_mb)
