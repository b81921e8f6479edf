"""organiser accounts, grants, API tokens and sign-in codes

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 20:00:00

`organiser` is an account (an e-mail), `organisergrant` its role on one consultation or all,
`organisersecret` its API tokens and one-time sign-in codes (a selector and a hash, never the
secret), `signinattempt` the sign-in attempts counted per hashed key and window
(`core.organisers`).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.models

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "organiser",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("email", sa.String(length=255), nullable=False),
        sa.Column("session_version", sa.Integer(), nullable=False),
        sa.Column("created_at", core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", core.models.UTCDateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("email"),
    )
    op.create_table(
        "organisergrant",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("organiser_id", sa.Integer(), sa.ForeignKey("organiser.id"), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("consultation_id", sa.Integer(), sa.ForeignKey("consultation.id"), nullable=True),
        sa.Column("created_at", core.models.UTCDateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_organisergrant_organiser_id", "organisergrant", ["organiser_id"])
    op.create_table(
        "organisersecret",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("organiser_id", sa.Integer(), sa.ForeignKey("organiser.id"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("selector", sa.String(length=32), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", core.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("used_at", core.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", core.models.UTCDateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("selector"),
    )
    op.create_index("ix_organisersecret_organiser_id", "organisersecret", ["organiser_id"])
    op.create_table(
        "signinattempt",
        sa.Column("key_hash", sa.String(length=64), primary_key=True),
        sa.Column("window_start", core.models.UTCDateTime(timezone=True), primary_key=True),
        sa.Column("count", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("signinattempt")
    op.drop_index("ix_organisersecret_organiser_id", table_name="organisersecret")
    op.drop_table("organisersecret")
    op.drop_index("ix_organisergrant_organiser_id", table_name="organisergrant")
    op.drop_table("organisergrant")
    op.drop_table("organiser")
