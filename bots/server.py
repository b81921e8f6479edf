"""The web server of `consult serve`: FastAPI under uvicorn, one app for every webhook and the
organiser API. Stateless: any number of workers can share one database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from adapters.channel import WebhookChannel
from bots.api import install_api
from bots.bootstrap import Runtime, runtime
from bots.broadcast_worker import broadcast_worker
from bots.channels import enabled_channels
from bots.console import console_app
from bots.console.access_log import hide_sign_in_codes
from bots.delivery import Keeper
from bots.notices import notice_worker
from bots.results import results_router
from bots.scheduler import scheduler_for
from bots.settings import Settings
from core.flow import utc_now
from core.moderation.language import load_model


def create_app(
    settings: Settings | None = None,
    channels: list[WebhookChannel] | None = None,
    *,
    clock: Callable[[], datetime] = utc_now,
) -> FastAPI:
    """The app; the database is opened (and migrated) when the server starts.

    The channels are those the settings enable, unless given (tests pass channels built with
    injected clocks, and the clock the organisers' console reads).
    """
    settings = settings or Settings()
    mounted = enabled_channels(settings) if channels is None else channels
    hide_sign_in_codes()  # a sign-in link from before the fragment (`?code=`) is not logged

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with runtime(settings, owes_replies=True) as rt:
            app.state.runtime = rt
            opened: list[WebhookChannel] = []
            by_name = {channel.name: channel for channel in mounted}
            keeper = Keeper(rt.flow, by_name, every=settings.delivery_beat_seconds)
            notices = notice_worker(rt, by_name, settings)
            broadcasts = broadcast_worker(rt, by_name, settings)
            scheduler = scheduler_for(rt, settings)  # runs where it holds the lease
            # The language flag's model loads beside the event loop, not at the first proposal.
            loading = asyncio.create_task(asyncio.to_thread(load_model))
            try:
                for channel in mounted:
                    await channel.open(rt.flow)
                    opened.append(channel)
                await keeper.start()
                await notices.start()
                await broadcasts.start()
                await scheduler.start()
                yield
            finally:
                await scheduler.stop()
                await broadcasts.stop()
                await notices.stop()
                await keeper.stop()
                for channel in reversed(opened):
                    await channel.close()
                await keeper.settle_last()
                await loading

    app = FastAPI(title="consult", lifespan=lifespan)
    for channel in mounted:
        app.include_router(channel.router)
    app.include_router(results_router(settings))
    install_api(app, settings, clock=clock)
    app.mount("/console", console_app(settings, lambda: _started(app), clock=clock))

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


def _started(app: FastAPI) -> Runtime:
    rt: Runtime = app.state.runtime
    return rt


def _runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt
