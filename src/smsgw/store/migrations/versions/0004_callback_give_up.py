"""Callbacks that are given up (past their time limit, or their partner has no callback URL any
more) are marked, with the reason in last_error, instead of being retried for ever.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The claim looks for rows neither delivered nor given up, oldest due first: one index range.
    op.drop_index("ix_callbacks_due", table_name="callbacks")
    with op.batch_alter_table("callbacks") as batch:
        batch.add_column(sa.Column("given_up_at", sa.BigInteger))
    op.create_index("ix_callbacks_due", "callbacks", ["delivered_at", "given_up_at", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_callbacks_due", table_name="callbacks")
    with op.batch_alter_table("callbacks") as batch:
        batch.drop_column("given_up_at")
    op.create_index("ix_callbacks_due", "callbacks", ["delivered_at", "next_attempt_at"])
