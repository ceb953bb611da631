"""Delivery bounds: unanswered submit_sm per message, messages awaiting a receipt by expiry,
unmatched receipts by key.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("unanswered", sa.SmallInteger, nullable=False, server_default=sa.text("0")))
    op.create_index(
        "ix_messages_awaiting_receipt", "messages", ["expires_at"], sqlite_where=sa.text("state = 2"), postgresql_where=sa.text("state = 2")
    )
    op.create_table(
        "unmatched_receipt_keys",
        sa.Column("key", sa.String(80), primary_key=True),
        sa.Column("connector", sa.String(64), primary_key=True),
        sa.Column("receipt_id", sa.BigInteger, primary_key=True),
        sa.Column("received_at", sa.BigInteger, nullable=False),
    )
    # Receipts already waiting keep being matched by key.
    connection = op.get_bind()
    rows = connection.execute(sa.text("SELECT id, connector, keys, received_at FROM unmatched_receipts WHERE matched_at IS NULL")).all()
    keys = [
        {"key": key, "connector": connector, "receipt_id": receipt_id, "received_at": received_at}
        for receipt_id, connector, joined, received_at in rows
        for key in dict.fromkeys(joined.split(","))
        if key
    ]
    if keys:
        table = sa.table("unmatched_receipt_keys", sa.column("key"), sa.column("connector"), sa.column("receipt_id"), sa.column("received_at"))
        op.bulk_insert(table, keys)


def downgrade() -> None:
    op.drop_table("unmatched_receipt_keys")
    op.drop_index("ix_messages_awaiting_receipt", "messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("unanswered")
