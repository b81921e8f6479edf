"""trust: participants found untrusted from their behaviour

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 23:10:00

`participanttrust` holds, per consultation, the participants the last assessment found
untrusted and why (`core.results.trust`), so that what reads stored results (the dashboard,
segment queries) can leave their votes out without assessing everyone again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.models

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "participanttrust",
        sa.Column(
            "consultation_id", sa.Integer(), sa.ForeignKey("consultation.id"), primary_key=True
        ),
        sa.Column(
            "participant_id", sa.Integer(), sa.ForeignKey("participant.id"), primary_key=True
        ),
        sa.Column("reasons", sa.String(length=255), nullable=False),
        sa.Column("assessed_at", core.models.UTCDateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("participanttrust")
