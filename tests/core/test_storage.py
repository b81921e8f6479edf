"""Migrations describe exactly the tables the models declare, on every backend."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

import core.models  # noqa: F401
from core.storage import migrate


async def test_migrations_match_the_models(engine) -> None:
    def differences(connection):
        context = MigrationContext.configure(connection)
        return compare_metadata(context, SQLModel.metadata)

    async with engine.connect() as connection:
        assert await connection.run_sync(differences) == []


async def test_migrating_again_is_a_no_op(engine) -> None:
    await migrate(engine)
    await migrate(engine)
