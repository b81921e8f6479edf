"""The web server of `consult serve`: FastAPI under uvicorn, one app for every webhook and the
organiser API. Stateless: any number of workers can share one database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from bots.bootstrap import Runtime, runtime
from bots.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app; the database is opened (and migrated) when the server starts."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with runtime(settings) as rt:
            app.state.runtime = rt
            yield

    app = FastAPI(title="consult", lifespan=lifespan)

    @app.get("/healthz")
    async def healthz(rt: Annotated[Runtime, Depends(_runtime)]) -> JSONResponse:
        """200 when the database answers, 503 otherwise (for load balancers and probes)."""
        try:
            async with rt.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError):
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)
        return JSONResponse({"status": "ok", "database": "ok"})

    return app


def _runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt
