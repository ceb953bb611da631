"""The console's searches leave the messages table: its two indexes go, a number index and
hourly rollups written off the acceptance path take their place, filled here for the messages
stored so far.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

HOUR_MS = 3600 * 1000


def upgrade() -> None:
    op.drop_index("ix_messages_partner", "messages")
    op.drop_index("ix_messages_msisdn", "messages")
    op.create_table(
        "message_numbers",
        sa.Column("msisdn", sa.String(20), primary_key=True),
        sa.Column("partner_id", sa.String(64), primary_key=True),
        sa.Column("message_id", sa.BigInteger, primary_key=True),
    )
    op.create_table(
        "message_rollups",
        sa.Column("hour", sa.BigInteger, primary_key=True),
        sa.Column("partner_id", sa.String(64), primary_key=True),
        sa.Column("network_id", sa.Integer, primary_key=True),
        sa.Column("messages", sa.BigInteger, nullable=False),
        sa.Column("parts", sa.BigInteger, nullable=False),
        sa.Column("cost", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "roll_marks",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("next_id", sa.BigInteger, nullable=False),
        sa.Column("pending_limit", sa.BigInteger),
        sa.Column("pending_since", sa.BigInteger),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_until", sa.BigInteger),
    )
    # In the index's own order, so that the index is written front to back: one sort, however
    # many messages the store holds. Stores are migrated with the gateway stopped, so every
    # message there is to be is there.
    op.execute(
        "INSERT INTO message_numbers (msisdn, partner_id, message_id) SELECT msisdn, partner_id, id FROM messages ORDER BY msisdn, partner_id, id"
    )
    op.execute(
        "INSERT INTO message_rollups (hour, partner_id, network_id, messages, parts, cost) "
        f"SELECT created_at / {HOUR_MS} * {HOUR_MS}, partner_id, network_id, COUNT(*), SUM(parts), SUM(cost) FROM messages "
        f"GROUP BY created_at / {HOUR_MS} * {HOUR_MS}, partner_id, network_id"
    )
    op.execute("INSERT INTO roll_marks (name, next_id) SELECT 'messages', COALESCE(MAX(id) + 1, 0) FROM messages")


def downgrade() -> None:
    op.drop_table("roll_marks")
    op.drop_table("message_rollups")
    op.drop_table("message_numbers")
    op.create_index("ix_messages_msisdn", "messages", ["msisdn", "partner_id", "id"])
    op.create_index("ix_messages_partner", "messages", ["partner_id", "id"])
