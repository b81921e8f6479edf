"""the indexes that find a sequencing pool hold every column it reads

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 04:10:00

Sequencing reads a few hundred proposals per selection by these two indexes (the oldest still
needing votes, and a run of the shuffle order); with their columns in the index, the database
answers from it alone instead of visiting hundreds of table rows scattered over the file. The
texts stay out (they are read for the dozen candidates compared); `id` is in for PostgreSQL's
index-only scans (SQLite keeps the rowid in every index anyway).

The price is on writes: a vote changes counters that are now in both indexes. On SQLite a first
vote rewrites an entry in each (it rewrote one before, for `vote_count`), a changed vote too
(none before). On PostgreSQL a first vote already wrote new entries in every index of the
table (`vote_count` was indexed); a changed vote, which could update the row in place before
(a HOT update), now does too. Measured on SQLite in process (the loop of `consult bench flow`),
a vote's cost did not move beyond the noise; on PostgreSQL, index-only scans also depend on how
recently the pages were vacuumed.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCOPE = ["consultation_id", "status", "locale"]
POOL = ["id", "author_id", "created_at", "agree_count", "disagree_count", "neutral_count"]
INDEXES = {
    "ix_proposal_fair_order": ([*SCOPE, "vote_count"], [*SCOPE, "vote_count", *POOL]),
    "ix_proposal_shuffle": ([*SCOPE, "shuffle"], [*SCOPE, "shuffle", "vote_count", *POOL]),
}


def _replace(columns_of: dict[str, list[str]]) -> None:
    for name, columns in columns_of.items():
        op.drop_index(name, table_name="proposal")
        op.create_index(name, "proposal", columns, unique=False)


def upgrade() -> None:
    _replace({name: covering for name, (_, covering) in INDEXES.items()})


def downgrade() -> None:
    _replace({name: narrow for name, (narrow, _) in INDEXES.items()})
