"""Database engines, sessions and migrations: SQLite by default, PostgreSQL to scale out."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from core import sqlite

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_MIGRATION_LOCK = 7_420_261  # any constant: serialises migrations of concurrent workers on PG


def async_url(url: str) -> str:
    """Give a database URL its async driver: SQLite -> our inline driver (core.sqlite),
    PostgreSQL -> asyncpg."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        parsed = parsed.set(drivername=f"sqlite+{sqlite.DRIVER}")
    elif parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif parsed.get_backend_name() != "postgresql":
        raise ArgumentError(
            f"{parsed.get_backend_name()}: only SQLite and PostgreSQL are supported"
        )
    return parsed.render_as_string(hide_password=False)


def create_engine(url: str, *, reading: bool = False) -> AsyncEngine:
    """An async engine for `url`; SQLite files get WAL, foreign keys and write-locking begins.

    `reading`: an engine whose transactions only read; on SQLite they begin without the write
    lock (`core.sqlite.begin_reading`), so that a long computation reading a consistent
    snapshot of the database keeps no writer waiting. Its errors never quote a statement's
    parameters: they hold addresses and what participants typed, and errors end up in logs.
    """
    url = async_url(url)
    if make_url(url).get_backend_name() != "sqlite":
        return create_async_engine(url, pool_pre_ping=True, hide_parameters=True)
    in_memory = make_url(url).database in (None, "", ":memory:")
    pool = {"pool_size": 1, "max_overflow": 0} if in_memory else {}
    engine = create_async_engine(url, hide_parameters=True, **pool)
    event.listen(engine.sync_engine, "connect", lambda connection, _: sqlite.configure(connection))
    # Every transaction takes the write lock up front: two writers then queue instead of one
    # failing when it upgrades a read lock.
    event.listen(
        engine.sync_engine, "begin", sqlite.begin_reading if reading else sqlite.begin_immediate
    )
    return engine


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def _upgrade(connection: Connection, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to the latest revision (safe to call from several workers at once);
    to an earlier `revision` for the tests of a migration."""
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})"))
        await connection.run_sync(_upgrade, revision)
