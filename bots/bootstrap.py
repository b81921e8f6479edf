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
from core.storage import create_engine, migrate, session_factory


@dataclass
class Runtime:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    flow: Flow


@asynccontextmanager
async def runtime(settings: Settings, rng: random.Random | None = None) -> AsyncIterator[Runtime]:
    """A migrated database and a flow over it, disposed of on exit."""
    engine = create_engine(settings.resolved_database_url())
    try:
        await migrate(engine)
        sessions = session_factory(engine)
        yield Runtime(engine, sessions, Flow(sessions, settings.resolved_secret(), rng=rng))
    finally:
        await engine.dispose()
