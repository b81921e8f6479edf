"""The SQLite driver that runs on the event loop's thread (core.sqlite): waiting for the write
lock must never hold the loop, or the transaction holding the lock could never finish."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import ArgumentError, OperationalError

from core import sqlite
from core.storage import async_url, create_engine


async def test_plain_sqlite_urls_use_the_inline_driver(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'a.sqlite3'}")
    assert engine.dialect.driver == sqlite.DRIVER
    async with engine.connect() as connection:
        assert (await connection.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await connection.execute(text("PRAGMA foreign_keys"))).scalar() == 1
    await engine.dispose()


async def test_a_transaction_waits_for_another_connections_write_lock_without_blocking(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'lock.sqlite3'}"
    first, second = create_engine(url), create_engine(url)  # as two processes would
    async with first.begin() as connection:
        await connection.execute(text("CREATE TABLE tap (n INTEGER)"))
    order: list[str] = []
    holding, waiting = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with first.begin() as connection:
            await connection.execute(text("INSERT INTO tap VALUES (1)"))
            holding.set()
            # The lock is let go only once the waiter, waiting for it, lets this task run: a
            # BEGIN blocking the thread in SQLite's busy handler would never get here.
            await waiting.wait()
            order.append("first committed")

    async def waiter() -> None:
        await holding.wait()
        # Runs when this task first lets the loop go: the inline driver does so only in its
        # wait for the write lock (core.sqlite.begin_immediate).
        asyncio.get_running_loop().call_soon(waiting.set)
        async with second.begin() as connection:
            order.append("second began")
            await connection.execute(text("INSERT INTO tap VALUES (2)"))

    await asyncio.gather(holder(), waiter())
    assert order == ["first committed", "second began"]
    async with second.connect() as connection:
        rows = (await connection.execute(text("SELECT n FROM tap ORDER BY n"))).scalars().all()
    assert rows == [1, 2]
    await first.dispose()
    await second.dispose()


async def test_a_reading_transaction_keeps_no_writer_waiting_and_reads_its_snapshot(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'reading.sqlite3'}"
    writer, reader = create_engine(url), create_engine(url, reading=True)
    async with writer.begin() as connection:
        await connection.execute(text("CREATE TABLE tap (n INTEGER)"))
        await connection.execute(text("INSERT INTO tap VALUES (1)"))
    async with reader.begin() as reading:
        seen = (await reading.execute(text("SELECT count(*) FROM tap"))).scalar()
        # A write in the middle of the read (as votes are cast while results are computed):
        # with the write lock held by the reader, it would wait, then fail.
        async with writer.begin() as connection:
            await connection.execute(text("INSERT INTO tap VALUES (2)"))
        again = (await reading.execute(text("SELECT count(*) FROM tap"))).scalar()
    assert (seen, again) == (1, 1)  # the reader's snapshot, whole
    async with reader.connect() as connection:
        assert (await connection.execute(text("SELECT count(*) FROM tap"))).scalar() == 2
    await writer.dispose()
    await reader.dispose()


async def test_the_wait_for_the_write_lock_is_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite, "LOCK_WAIT_SECONDS", 0.2)
    url = f"sqlite:///{tmp_path / 'bounded.sqlite3'}"
    first, second = create_engine(url), create_engine(url)
    async with first.begin() as connection:
        await connection.execute(text("CREATE TABLE tap (n INTEGER)"))
        # SQLAlchemy's own error, which the health check and the CLI know how to report.
        with pytest.raises(OperationalError, match="locked"):
            async with second.begin() as other:
                await other.execute(text("INSERT INTO tap VALUES (2)"))
    await first.dispose()
    await second.dispose()


async def test_rows_are_read_with_their_statement(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'rows.sqlite3'}")
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE tap (id INTEGER PRIMARY KEY, n INTEGER)"))
        await connection.execute(text("INSERT INTO tap (n) VALUES (1), (2), (3)"))
    async with engine.begin() as connection:
        # A RETURNING nobody reads must not keep the statement open past COMMIT...
        await connection.execute(text("INSERT INTO tap (n) VALUES (4) RETURNING id"))
        # ...and rows updated while a query over them is read are each seen once.
        seen = 0
        for row in await connection.execute(text("SELECT id FROM tap ORDER BY n")):
            await connection.execute(text(f"UPDATE tap SET n = n + 100 WHERE id = {row.id}"))
            seen += 1
        assert seen == 4
    async with engine.connect() as connection:
        values = (await connection.execute(text("SELECT n FROM tap ORDER BY n"))).scalars().all()
    assert values == [101, 102, 103, 104]
    await engine.dispose()


async def test_an_in_memory_database_is_lent_to_one_transaction_at_a_time() -> None:
    engine = create_engine("sqlite://")
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE tap (n INTEGER)"))

    inside, asked = asyncio.Event(), asyncio.Event()

    async def first() -> None:
        async with engine.begin() as connection:
            await connection.execute(text("INSERT INTO tap VALUES (1)"))
            inside.set()
            await asked.wait()  # the other transaction tries meanwhile

    async def second() -> None:
        await inside.wait()
        # Runs when this task first lets the loop go: waiting for the one connection.
        asyncio.get_running_loop().call_soon(asked.set)
        async with engine.begin() as connection:
            await connection.execute(text("INSERT INTO tap VALUES (2)"))

    await asyncio.gather(first(), second())
    async with engine.connect() as connection:
        rows = (await connection.execute(text("SELECT n FROM tap ORDER BY n"))).scalars().all()
    assert rows == [1, 2]
    await engine.dispose()


def test_other_databases_are_refused_with_a_clear_error() -> None:
    with pytest.raises(ArgumentError, match="only SQLite and PostgreSQL"):
        async_url("mysql://root@localhost/consult")
    assert async_url("postgres://u@h/db").startswith("postgresql+asyncpg://")
