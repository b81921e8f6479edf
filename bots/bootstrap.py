"""Assembling the core for a runnable bot: engine, migrations, the conversation flow."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bots.settings import Settings
from core.flow import Flow
from core.outbox import Ledger
from core.storage import create_engine, migrate, session_factory


@dataclass
class Runtime:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    flow: Flow


@asynccontextmanager
async def runtime(
    settings: Settings, rng: random.Random | None = None, *, owes_replies: bool = False
) -> AsyncIterator[Runtime]:
    """A migrated database and a flow over it, disposed of on exit.

    With `owes_replies` (the server), every event's replies are owed until sent, so that they
    outlive a crash of this process (`core.outbox`).
    """
    engine = create_engine(settings.resolved_database_url())
    try:
        await migrate(engine)
        sessions = session_factory(engine)
        ledger = Ledger(stale_after=settings.delivery_stale_seconds) if owes_replies else None
        flow = Flow(sessions, settings.resolved_secret(), rng=rng, ledger=ledger)
        yield Runtime(engine, sessions, flow)
    finally:
        await engine.dispose()
