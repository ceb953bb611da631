"""Delivery outcomes counted per hour, partner, network, SMSC and state (outcome_rollups), in
the transactions that move messages; filled here from the messages stored so far.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

HOUR_MS = 3600 * 1000
SENT = 2
OPEN_STATES = "1, 2"


def upgrade() -> None:
    op.create_table(
        "outcome_rollups",
        sa.Column("hour", sa.BigInteger, primary_key=True),
        sa.Column("partner_id", sa.String(64), primary_key=True),
        sa.Column("network_id", sa.Integer, primary_key=True),
        sa.Column("smsc", sa.String(64), primary_key=True),
        sa.Column("state", sa.SmallInteger, primary_key=True),
        sa.Column("messages", sa.BigInteger, nullable=False),
        sa.Column("parts", sa.BigInteger, nullable=False),
    )
    # Stores are migrated with the gateway stopped: every move so far is in messages, the
    # submit at submitted_at, the final state at done_at, as the gateway counts them from now on.
    op.execute(
        "INSERT INTO outcome_rollups (hour, partner_id, network_id, smsc, state, messages, parts) "
        f"SELECT submitted_at / {HOUR_MS} * {HOUR_MS}, partner_id, network_id, COALESCE(connector, ''), {SENT}, COUNT(*), SUM(parts) "
        "FROM messages WHERE submitted_at IS NOT NULL "
        f"GROUP BY submitted_at / {HOUR_MS} * {HOUR_MS}, partner_id, network_id, COALESCE(connector, '')"
    )
    op.execute(
        "INSERT INTO outcome_rollups (hour, partner_id, network_id, smsc, state, messages, parts) "
        f"SELECT done_at / {HOUR_MS} * {HOUR_MS}, partner_id, network_id, COALESCE(connector, ''), state, COUNT(*), SUM(parts) "
        f"FROM messages WHERE state NOT IN ({OPEN_STATES}) AND done_at IS NOT NULL "
        f"GROUP BY done_at / {HOUR_MS} * {HOUR_MS}, partner_id, network_id, COALESCE(connector, ''), state"
    )


def downgrade() -> None:
    op.drop_table("outcome_rollups")
