"""Inbound messages record when their deliver_sm_resp went out, so that a carrier's late resend
of one never answered is recognised at any age.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_messages") as batch:
        batch.add_column(sa.Column("answered_at", sa.BigInteger))
    # Stored before this revision: the gateway answered every one it stored, unless it died in
    # between, which cannot be told now; they keep the time window alone.
    op.execute("UPDATE inbound_messages SET answered_at = received_at")
    op.create_index(
        "ix_inbound_unanswered",
        "inbound_messages",
        ["msisdn"],
        sqlite_where=sa.text("answered_at IS NULL"),
        postgresql_where=sa.text("answered_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_inbound_unanswered", "inbound_messages")
    with op.batch_alter_table("inbound_messages") as batch:
        batch.drop_column("answered_at")
