"""participation.locale: the language a participant was last written to in a consultation

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 00:00:00

Broadcasts and reminders reach participants without an event of theirs to read a language
from: they use the one the conversation last spoke (a choice, else the app's language).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("participation") as table:
        table.add_column(sa.Column("locale", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("participation") as table:
        table.drop_column("locale")
