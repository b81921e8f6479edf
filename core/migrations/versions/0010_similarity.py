"""what finds similar proposals fast (their terms) and ideas

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 20:00:00

`proposalterm` is the inverted index of each proposal's stemmed words (with its status, so that
a lookup reads the index alone) and `termcount` how many proposals of a consultation have each
(the term "" counts the proposals), both kept by the ORM when a proposal is written (`core.moderation.similarity`); the proposals already stored are
indexed here. `idea` is a named group of proposals, `ideaproposal` a proposal's idea.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.models

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _index_existing_proposals() -> None:
    from core.moderation.index import index_rows

    connection = op.get_bind()
    found = connection.execute(
        sa.text("SELECT id, consultation_id, text, locale, status FROM proposal")
    )
    postings, counts = index_rows((i, c, t, lo, s) for i, c, t, lo, s in found)
    if postings:
        connection.execute(
            sa.table(
                "proposalterm",
                *map(sa.column, ("proposal_id", "term", "consultation_id", "status")),
            ).insert(),
            postings,
        )
    if counts:
        connection.execute(
            sa.table(
                "termcount", *map(sa.column, ("consultation_id", "term", "proposals"))
            ).insert(),
            counts,
        )


def upgrade() -> None:
    op.create_table(
        "proposalterm",
        sa.Column("proposal_id", sa.Integer(), sa.ForeignKey("proposal.id"), nullable=False),
        sa.Column("term", sa.String(length=64), nullable=False),
        sa.Column(
            "consultation_id", sa.Integer(), sa.ForeignKey("consultation.id"), nullable=False
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("proposal_id", "term"),
    )
    op.create_index(
        "ix_proposalterm_lookup",
        "proposalterm",
        ["consultation_id", "term", "status", "proposal_id"],
    )
    op.create_table(
        "termcount",
        sa.Column(
            "consultation_id", sa.Integer(), sa.ForeignKey("consultation.id"), nullable=False
        ),
        sa.Column("term", sa.String(length=64), nullable=False),
        sa.Column("proposals", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("consultation_id", "term"),
    )
    op.create_table(
        "idea",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "consultation_id", sa.Integer(), sa.ForeignKey("consultation.id"), nullable=False
        ),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("created_at", core.models.UTCDateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("consultation_id", "name"),
    )
    op.create_table(
        "ideaproposal",
        sa.Column("proposal_id", sa.Integer(), sa.ForeignKey("proposal.id"), nullable=False),
        sa.Column("idea_id", sa.Integer(), sa.ForeignKey("idea.id"), nullable=False),
        sa.Column("added_at", core.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("proposal_id"),
    )
    op.create_index("ix_ideaproposal_idea", "ideaproposal", ["idea_id", "proposal_id"])
    _index_existing_proposals()


def downgrade() -> None:
    op.drop_index("ix_ideaproposal_idea", table_name="ideaproposal")
    op.drop_table("ideaproposal")
    op.drop_table("idea")
    op.drop_table("termcount")
    op.drop_index("ix_proposalterm_lookup", table_name="proposalterm")
    op.drop_table("proposalterm")
