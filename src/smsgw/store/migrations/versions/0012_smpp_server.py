"""The partner SMPP server: partners' SMPP accounts and the receipts owed to their binds.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "smpp_accounts",
        sa.Column("system_id", sa.String(16), primary_key=True),
        sa.Column("partner_id", sa.String(64), sa.ForeignKey("partners.id"), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("max_binds", sa.Integer, nullable=False),
        sa.Column("window", sa.Integer, nullable=False),
        sa.Column("tps", sa.Integer),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_smpp_accounts_partner", "smpp_accounts", ["partner_id"])
    op.create_table(
        "smpp_receipts",
        sa.Column("message_id", sa.BigInteger, primary_key=True),
        sa.Column("system_id", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("next_attempt_at", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("delivered_at", sa.BigInteger),
    )
    op.create_index(
        "ix_smpp_receipts_owed",
        "smpp_receipts",
        ["system_id", "message_id"],
        sqlite_where=sa.text("delivered_at IS NULL"),
        postgresql_where=sa.text("delivered_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("smpp_receipts")
    op.drop_table("smpp_accounts")
