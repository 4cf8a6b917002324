"""How ``sql.protocol`` queries are answered on an sqlite3 connection (synchronously, on the connection's thread)."""
from __future__ import annotations

import sqlite3
from typing import Any, Callable

from ml_dash.server.storage.sql.protocol import CALL, ROW, ROWS, SCRIPT


def answerer(conn: sqlite3.Connection) -> Callable[..., Any]:
    """The ``answer`` function ``sql.run_sync`` drives a body with, on ``conn``."""
    def answer(mode: str, sql: Any, args: Any = ()) -> Any:
        if mode is CALL:
            return sql(conn)
        if mode is SCRIPT:
            # One statement at a time: executescript() would COMMIT the caller's transaction first.
            for statement in sql.split(";"):
                if statement.strip():
                    conn.execute(statement)
            return None
        cursor = conn.execute(sql, args)
        return cursor.fetchone() if mode is ROW else cursor.fetchall() if mode is ROWS else cursor.rowcount

    return answer
