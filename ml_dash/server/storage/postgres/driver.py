"""How ``sql.protocol`` queries are answered on an asyncpg connection, and the errors a client's input causes there."""
from __future__ import annotations

from typing import Any, Awaitable, Callable, TypeVar

import asyncpg

from ml_dash.server.errors import BadRequest
from ml_dash.server.storage.sql.protocol import (
    CALL,
    ROW,
    ROWS,
    SCRIPT,
    Body,
    numbered,
    run_async,
)

T = TypeVar("T")


def answerer(conn: asyncpg.Connection) -> Callable[..., Awaitable[Any]]:
    """The ``answer`` function ``sql.run_async`` drives a body with, on ``conn``."""
    async def answer(mode: str, sql: Any, args: Any = ()) -> Any:
        if mode is CALL:
            return await sql(conn)
        if mode is SCRIPT:
            return await conn.execute(sql)  # simple-query protocol: several statements at once
        if mode is ROW:
            return await conn.fetchrow(numbered(sql), *args)
        if mode is ROWS:
            return await conn.fetch(numbered(sql), *args)
        count = (await conn.execute(numbered(sql), *args)).rpartition(" ")[2]  # "UPDATE 1"; "BEGIN" changes none
        return int(count) if count.isdigit() else 0

    return answer


async def run(conn: asyncpg.Connection, body: Body[T]) -> T:
    """``body`` run on ``conn``. PostgreSQL refuses some text SQLite takes (NUL characters): a client's bad input is
    a 400, never a 500."""
    try:
        return await run_async(body, answerer(conn))
    except asyncpg.exceptions.CharacterNotInRepertoireError:
        raise BadRequest("text must not contain NUL characters") from None
    except asyncpg.exceptions.DataError as exc:
        raise BadRequest(f"value rejected by the database: {exc}") from None
