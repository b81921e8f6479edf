"""The databases benchmarks run on: an SQLite file of their own, and a PostgreSQL server's
`consult_bench` database when one answers (never the database its URL names)."""

from __future__ import annotations

import asyncio

from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.storage import create_engine


async def bench_database(server_url: str, name: str = "consult_bench") -> str | None:
    """The URL of the database `name` (`consult_bench` unless a benchmark needs its own) on the
    server, created if missing, or None when the server does not answer (the PostgreSQL rows are
    then left out). `name` is one of ours, never an organiser's input."""
    engine = create_engine(server_url)
    try:
        async with asyncio.timeout(5), engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            found = await connection.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            )
            if found.first() is None:
                await connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception:  # unreachable, refused, not PostgreSQL: no PostgreSQL rows
        return None
    finally:
        await engine.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def empty_schema(engine: AsyncEngine) -> None:
    """On PostgreSQL, drop every table of the last run (an SQLite file is new each run)."""
    if engine.dialect.name != "postgresql":
        return
    async with engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
