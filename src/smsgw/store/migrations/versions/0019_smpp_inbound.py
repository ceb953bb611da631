"""Inbound messages of partners that take them over SMPP: owed to their receiver binds.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "smpp_inbound",
        sa.Column("inbound_id", sa.BigInteger, primary_key=True),
        sa.Column("partner_id", sa.String(64), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("next_attempt_at", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("delivered_at", sa.BigInteger),
    )
    op.create_index(
        "ix_smpp_inbound_owed",
        "smpp_inbound",
        ["partner_id", "inbound_id"],
        sqlite_where=sa.text("delivered_at IS NULL"),
        postgresql_where=sa.text("delivered_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("smpp_inbound")
