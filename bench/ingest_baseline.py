"""The bare baseline of `consult bench ingest`: the least a webhook server can do per tap.

A FastAPI endpoint on the same stack as `consult serve` (uvicorn with as many workers, the same
database driver and engine settings) that parses the update's JSON and inserts one row, in its
own transaction, with the update id unique as ours is. Run as
`uvicorn bench.ingest_baseline:create_app --factory` with CONSULT_BENCH_DATABASE_URL set, once
`create_table` has run.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, func, select

from core.storage import create_engine

metadata = MetaData()
taps = Table(
    "bench_tap",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("update_id", BigInteger, unique=True, nullable=False),
    Column("user_id", BigInteger, nullable=False),
    Column("data", String(64), nullable=False),
)


async def create_table(database_url: str) -> None:
    """The baseline's table, fresh; created before the server starts, so that its workers
    never race to create it."""
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.run_sync(metadata.drop_all)
        await connection.run_sync(metadata.create_all)
    await engine.dispose()


async def stored_taps(database_url: str) -> int:
    engine = create_engine(database_url)
    async with engine.connect() as connection:
        count = (await connection.execute(select(func.count()).select_from(taps))).scalar_one()
    await engine.dispose()
    return int(count)


def create_app() -> FastAPI:
    engine = create_engine(os.environ["CONSULT_BENCH_DATABASE_URL"])

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/webhooks/telegram")
    async def tap(request: Request) -> Response:
        update = await request.json()
        query = update["callback_query"]
        async with engine.begin() as connection:
            await connection.execute(
                taps.insert().values(
                    update_id=update["update_id"], user_id=query["from"]["id"], data=query["data"]
                )
            )
        return Response(status_code=200)

    return app
