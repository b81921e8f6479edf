"""Migrations describe exactly the tables the models declare, on every backend."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

import core.models  # noqa: F401
from core.scoring import contender_scores
from core.storage import MIGRATIONS, create_engine, migrate


def _differences(connection) -> list[object]:
    """What the models declare and the database lacks, or the other way round."""
    return compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)


async def test_migrations_match_the_models(engine) -> None:
    async with engine.connect() as connection:
        assert await connection.run_sync(_differences) == []


def _schema(connection) -> dict[str, object]:
    """Every table's columns (name, type, nullability), indexes and unique constraints."""
    inspector = inspect(connection)
    return {
        table: (
            [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
            sorted((i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(table)),
            sorted(
                (u["name"] or "", tuple(u["column_names"]))
                for u in inspector.get_unique_constraints(table)
            ),
        )
        for table in sorted(inspector.get_table_names())
    }


def _revisions(connection) -> list[str]:
    return list(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())


async def test_migrating_again_is_a_no_op(engine) -> None:
    """The `engine` fixture migrated to the head already: twice more changes nothing."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    async with engine.connect() as connection:
        before = await connection.run_sync(_schema)

    await migrate(engine)
    await migrate(engine)

    async with engine.connect() as connection:
        assert await connection.run_sync(_revisions) == [head]
        assert await connection.run_sync(_schema) == before
        assert await connection.run_sync(_differences) == []
    assert "processedevent" in before and head is not None


async def test_proposals_get_their_trusted_vote_counts_from_the_counters(database_url) -> None:
    """Revision 0003 copies each proposal's trusted agree/disagree/neutral tallies onto it;
    revision 0005 scores them."""
    engine = create_engine(database_url)
    try:
        await migrate(engine, "0002")
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO consultation (id, slug, status, audience, default_locale,"
                    " locales, question, privacy_notice, settings, profile_questions,"
                    " created_at, updated_at) VALUES (1, 'c', 'open', 'citizens', 'en', '[]',"
                    " '{}', '{}', '{}', '[]', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
            for proposal, votes in ((1, 12), (2, 7)):  # tested (scored), and new (0)
                await connection.execute(
                    text(
                        "INSERT INTO proposal (id, consultation_id, locale, text, status,"
                        " vote_count, created_at, updated_at) VALUES (:id, 1, 'en', 'p',"
                        " 'accepted', :votes, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                    ),
                    {"id": proposal, "votes": votes},
                )
            tallies = [
                (1, "agree", True, 9),
                (1, "agree", False, 2),
                (1, "disagree", True, 1),
                (1, "likeIt", True, 3),
                (2, "neutral", True, 7),
            ]
            for proposal, key, trusted, count in tallies:
                await connection.execute(
                    text(
                        "INSERT INTO tally (proposal_id, key, trusted, count)"
                        " VALUES (:p, :k, :t, :c)"
                    ),
                    {"p": proposal, "k": key, "t": trusted, "c": count},
                )
        await migrate(engine)
        async with engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT id, agree_count, disagree_count, neutral_count, vote_count,"
                    " agree_score, split_score FROM proposal ORDER BY id"
                )
            )
            found = [tuple(row) for row in rows]
        assert [row[:4] for row in found] == [(1, 9, 1, 0), (2, 0, 0, 7)]
        # Revision 0005 scores those counts exactly as the code does (ties must stay ties).
        for _, agree, disagree, neutral, votes, *scores in found:
            assert tuple(scores) == contender_scores(agree, disagree, neutral, votes)
        assert found[0][-2] > 0 and found[1][-2:] == (0, 0)
    finally:
        await engine.dispose()
