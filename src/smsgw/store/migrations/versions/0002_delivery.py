"""Delivery: message parts and their SMSC ids, receipt keys, unmatched receipts, callbacks.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("expires_at", sa.BigInteger))
        batch.add_column(sa.Column("connector", sa.String(64)))
    op.create_table(
        "message_parts",
        sa.Column("message_id", sa.BigInteger, primary_key=True),
        sa.Column("part_no", sa.SmallInteger, primary_key=True),
        sa.Column("connector", sa.String(64), nullable=False),
        sa.Column("smsc_message_id", sa.String(80), nullable=False),
        sa.Column("state", sa.SmallInteger, nullable=False),
        sa.Column("stat", sa.String(16)),
        sa.Column("error", sa.String(16)),
        sa.Column("receipt_at", sa.BigInteger),
    )
    op.create_table(
        "receipt_keys",
        sa.Column("key", sa.String(80), primary_key=True),
        sa.Column("connector", sa.String(64), primary_key=True),
        sa.Column("message_id", sa.BigInteger, primary_key=True),
        sa.Column("part_no", sa.SmallInteger, primary_key=True),
        sa.Column("parts", sa.SmallInteger, nullable=False),
    )
    op.create_table(
        "unmatched_receipts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("connector", sa.String(64), nullable=False),
        sa.Column("smsc_message_id", sa.String(80), nullable=False),
        sa.Column("keys", sa.String(400), nullable=False),
        sa.Column("state", sa.SmallInteger, nullable=False),
        sa.Column("stat", sa.String(16)),
        sa.Column("error", sa.String(16)),
        sa.Column("done_at", sa.BigInteger),
        sa.Column("received_at", sa.BigInteger, nullable=False),
        sa.Column("matched_at", sa.BigInteger),
    )
    op.create_index("ix_unmatched_open", "unmatched_receipts", ["matched_at", "connector"])
    op.create_table(
        "callbacks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("partner_id", sa.String(64), nullable=False),
        sa.Column("message_id", sa.BigInteger, nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("next_attempt_at", sa.BigInteger, nullable=False),
        sa.Column("lease_until", sa.BigInteger),
        sa.Column("delivered_at", sa.BigInteger),
        sa.Column("last_error", sa.String(200)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_callbacks_due", "callbacks", ["delivered_at", "next_attempt_at"])


def downgrade() -> None:
    for table in ("callbacks", "unmatched_receipts", "receipt_keys", "message_parts"):
        op.drop_table(table)
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("connector")
        batch.drop_column("expires_at")
