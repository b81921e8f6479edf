"""SQLite for an asyncio server: the standard `sqlite3` driver, called on the event loop's thread.

aiosqlite runs every call (execute, fetch, close, commit) in a worker thread and hands the
result back through the event loop: four or five thread switches per statement, about 0.4 ms
each on a small machine, where SQLite itself answers an indexed query in 10 µs. A vote's
transaction holds a dozen statements, so the switches, not SQLite, made most of its cost.

Calling `sqlite3` directly is safe for an embedded database whose statements are short and local,
as long as nothing waits on a lock while holding the loop. Every transaction starts with
`BEGIN IMMEDIATE` (see `core.storage`), the statement that waits for another connection's
transaction (another task's, another `consult serve` process's). That wait is done here,
asynchronously: the BEGIN is tried with SQLite's busy timeout at zero and, while the
database is locked, retried after an `asyncio.sleep`, so the transaction holding the lock goes on
meanwhile. Other statements keep a short busy timeout (which may hold the loop that long) for
SQLite's rare transient locks: a checkpoint or a recovery of the write-ahead log in a process
sharing the file, the journal mode set as a connection opens.

Every SQLite URL given to `core.storage.create_engine` uses this driver (`sqlite+inline`).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from sqlalchemy import pool
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import URL, Connection, Dialect
from sqlalchemy.exc import OperationalError

# SQLAlchemy offers no public way for a dialect to await from its synchronous hooks; these two
# internal names exist as such from 2.1.0 (2.0 had await_only) and await_only's alias is to go in
# 2.2: pyproject pins sqlalchemy to >=2.1,<2.2 for them.
from sqlalchemy.util.concurrency import await_, in_greenlet

DRIVER = "inline"
# SQLite's own wait for a transient lock, in ms: short, since it blocks the event loop.
TRANSIENT_LOCK_WAIT_MS = 50
LOCK_WAIT_SECONDS = 30.0  # how long a transaction waits for the write lock before failing


class InlineSQLiteDialect(SQLiteDialect_pysqlite):
    """pysqlite, declared async so that an AsyncEngine accepts it: its calls simply complete
    without awaiting anything."""

    driver = DRIVER
    is_async = True
    supports_statement_cache = True

    @classmethod
    def get_pool_class(cls, url: URL) -> type[pool.Pool]:
        # The asyncio-aware queue pool: a task waiting for a connection awaits it. An in-memory
        # database lives in its one connection, which `core.storage` then lends to one task at
        # a time (a pool of one).
        return pool.AsyncAdaptedQueuePool

    # SQLAlchemy's AsyncConnection checks that a statement went through an await (to catch a
    # synchronous driver by mistake); each call is wrapped in a coroutine that completes at
    # once, which satisfies it without a trip through the event loop.
    def do_execute(self, cursor: Any, statement: Any, parameters: Any, context: Any = None) -> None:
        _inline(cursor.execute, statement, parameters)

    def do_execute_no_params(self, cursor: Any, statement: Any, context: Any = None) -> None:
        _inline(cursor.execute, statement)

    def do_executemany(
        self, cursor: Any, statement: Any, parameters: Any, context: Any = None
    ) -> None:
        _inline(cursor.executemany, statement, parameters)

    def create_connect_args(self, url: URL) -> Any:
        args, kwargs = super().create_connect_args(url)
        # Connections move between event loops' threads in tests and CLI runs; one task at a
        # time uses a connection (the pool lends it).
        kwargs["check_same_thread"] = False
        kwargs["factory"] = _Connection
        return args, kwargs


class _Cursor(sqlite3.Cursor):
    """A cursor that reads a query's rows as it runs it, as SQLAlchemy's other async drivers do.

    A sqlite3 cursor otherwise keeps its statement running until its rows are read: a COMMIT
    with a RETURNING left unread fails ("SQL statements in progress"), and rows updated while a
    query over them is being read can come round again.
    """

    _rows: deque[Any]

    def execute(self, sql: str, parameters: Any = (), /) -> _Cursor:
        super().execute(sql, parameters)
        self._rows = deque(super().fetchall() if self.description is not None else ())
        return self

    def executemany(self, sql: str, parameters: Any, /) -> _Cursor:
        super().executemany(sql, parameters)
        self._rows = deque()
        return self

    def fetchone(self) -> Any:
        return self._rows.popleft() if getattr(self, "_rows", None) else None

    def fetchmany(self, size: int | None = None) -> list[Any]:
        rows: deque[Any] = getattr(self, "_rows", deque())
        count = self.arraysize if size is None else size
        return [rows.popleft() for _ in range(min(count, len(rows)))]

    def fetchall(self) -> list[Any]:
        rows = list(getattr(self, "_rows", ()))
        self._rows = deque()
        return rows

    async def _async_soft_close(self) -> None:
        """What AsyncConnection calls before handing a result over: the rows are read already."""


class _Connection(sqlite3.Connection):
    def cursor(self, factory: Any = _Cursor) -> _Cursor:  # type: ignore[override]
        return super().cursor(factory)  # type: ignore[no-any-return]


async def _now(call: Callable[..., Any], *args: Any) -> Any:
    return call(*args)


def _inline(call: Callable[..., Any], *args: Any) -> Any:
    return await_(_now(call, *args)) if in_greenlet() else call(*args)


registry.register(f"sqlite.{DRIVER}", __name__, "InlineSQLiteDialect")


def one_writer_at_a_time(dialect: Dialect) -> bool:
    """Whether transactions on `dialect` run one at a time: on SQLite each takes the write lock
    as it begins (`begin_immediate`), so a query reads what the last one committed."""
    return dialect.name == "sqlite"


def configure(dbapi_connection: sqlite3.Connection) -> None:
    """A new connection's settings: SQLAlchemy opens transactions (see `begin_immediate`),
    foreign keys are enforced, the journal is a write-ahead log."""
    dbapi_connection.isolation_level = None
    dbapi_connection.execute(f"PRAGMA busy_timeout={TRANSIENT_LOCK_WAIT_MS}")
    dbapi_connection.execute("PRAGMA foreign_keys=ON")
    dbapi_connection.execute("PRAGMA journal_mode=WAL")


def begin_reading(connection: Connection) -> None:
    """Open a transaction that only reads: with the write-ahead log it sees the database as
    its first read found it, and holds no lock a writer waits for (a write in it would fail
    if another connection wrote meanwhile: a reading engine never writes)."""
    raw = connection.connection.dbapi_connection
    assert raw is not None
    raw.execute("BEGIN")


def begin_immediate(connection: Connection) -> None:
    """Open the transaction holding the write lock, waiting for it without blocking the loop."""
    raw = connection.connection.dbapi_connection
    assert raw is not None
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    delay = 0.0005
    while True:
        raw.execute("PRAGMA busy_timeout=0")
        try:
            raw.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() + delay > deadline:
                # SQLAlchemy does not wrap what a "begin" listener raises: callers catch its
                # errors (the health check, the CLI), so give them one.
                raise OperationalError("BEGIN IMMEDIATE", None, error) from error
        finally:
            raw.execute(f"PRAGMA busy_timeout={TRANSIENT_LOCK_WAIT_MS}")
        if in_greenlet():
            await_(asyncio.sleep(delay))
        else:  # a synchronous caller (a migration run outside the loop): nothing else to run
            time.sleep(delay)
        delay = min(delay * 2, 0.02)
