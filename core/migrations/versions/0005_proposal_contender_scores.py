"""proposals carry the scores sequencing ranks its contenders by, indexed

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 05:50:00

`agree_score` (the smoothed agree rate) and `split_score` (the smaller of the smoothed agree
and disagree rates) of each proposal's trusted counts, 0 for a proposal with fewer than 10
votes: `core.scoring.contender_scores`, kept by the vote's own UPDATE (`core.voting`).
Sequencing reads the few dozen best of each by these indexes next to its sample, so that the
leaders of a consultation of any size are in the pool.

The price is on writes: every vote that moves a trusted count also moves both scores, so it
rewrites an entry in each of the two new indexes (on PostgreSQL it wrote new entries in every
index already, `vote_count` being indexed).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCOPE = ["consultation_id", "status", "locale"]
SCORES = ("agree_score", "split_score")
# What the pool reads, as in revision 0004's indexes: the database answers from the index alone.
COVERED = ["vote_count", "id", "author_id", "created_at"]
COVERED += ["agree_count", "disagree_count", "neutral_count"]
# core.scoring when this was written (a migration does not follow the code), in floating point
# as the code computes it: PostgreSQL would compute in NUMERIC on bare decimal literals.
PRIOR, ONE, TESTED_FROM = "CAST(0.33 AS DOUBLE PRECISION)", "CAST(1 AS DOUBLE PRECISION)", 10
COUNTED = f"(agree_count + disagree_count + neutral_count + {ONE})"
RATE = f"(agree_count + {PRIOR}) / {COUNTED}"
AGAINST = f"(disagree_count + {PRIOR}) / {COUNTED}"


def upgrade() -> None:
    with op.batch_alter_table("proposal") as batch:
        for name in SCORES:
            batch.add_column(sa.Column(name, sa.Float(), nullable=False, server_default="0"))
    new = f"vote_count < {TESTED_FROM}"
    op.execute(
        f"UPDATE proposal SET agree_score = CASE WHEN {new} THEN 0 ELSE {RATE} END,"
        f" split_score = CASE WHEN {new} THEN 0 WHEN {RATE} < {AGAINST} THEN {RATE}"
        f" ELSE {AGAINST} END"
    )
    for name in SCORES:
        op.create_index(f"ix_proposal_{name}", "proposal", [*SCOPE, name, *COVERED], unique=False)


def downgrade() -> None:
    for name in SCORES:
        op.drop_index(f"ix_proposal_{name}", table_name="proposal")
    with op.batch_alter_table("proposal") as batch:
        for name in SCORES:
            batch.drop_column(name)
