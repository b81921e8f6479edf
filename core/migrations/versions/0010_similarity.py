"""what finds similar proposals fast (their terms) and ideas

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 20:00:00

`proposalterm` is the inverted index of each proposal's stemmed words and `termcount` how many
proposals of a consultation have each (the term "" counts the proposals), both kept by the ORM
when a proposal is written (`core.moderation.similarity`); the proposals already stored are
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
    from core.moderation.text import terms

    connection = op.get_bind()
    proposals = connection.execute(
        sa.text("SELECT id, consultation_id, text, locale FROM proposal")
    )
    postings: list[dict[str, object]] = []
    counts: dict[tuple[int, str], int] = {}
    for proposal_id, consultation_id, text, locale in proposals:
        counts[(consultation_id, "")] = counts.get((consultation_id, ""), 0) + 1
        for term in sorted(terms(text, locale)):
            postings.append({"c": consultation_id, "t": term, "p": proposal_id})
            counts[(consultation_id, term)] = counts.get((consultation_id, term), 0) + 1
    if postings:
        connection.execute(
            sa.text(
                "INSERT INTO proposalterm (consultation_id, term, proposal_id) VALUES (:c, :t, :p)"
            ),
            postings,
        )
    if counts:
        connection.execute(
            sa.text("INSERT INTO termcount (consultation_id, term, proposals) VALUES (:c, :t, :n)"),
            [{"c": c, "t": t, "n": n} for (c, t), n in counts.items()],
        )


def upgrade() -> None:
    op.create_table(
        "proposalterm",
        sa.Column(
            "consultation_id", sa.Integer(), sa.ForeignKey("consultation.id"), nullable=False
        ),
        sa.Column("term", sa.String(length=64), nullable=False),
        sa.Column("proposal_id", sa.Integer(), sa.ForeignKey("proposal.id"), nullable=False),
        sa.PrimaryKeyConstraint("consultation_id", "term", "proposal_id"),
    )
    op.create_index("ix_proposalterm_proposal", "proposalterm", ["proposal_id", "term"])
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
    op.drop_index("ix_proposalterm_proposal", table_name="proposalterm")
    op.drop_table("proposalterm")
