"""Requests to upstream providers are written before they are sent, so that a message whose
answer was lost goes again with the same Idempotency-Key and body, across restarts.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "upstream_requests",
        sa.Column("idempotency_key", sa.String(64), primary_key=True),
        sa.Column("route", sa.String(64), nullable=False),
        sa.Column("entries", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_upstream_requests_created", "upstream_requests", ["created_at"])
    op.create_table(
        "upstream_request_messages",
        sa.Column("message_id", sa.BigInteger, primary_key=True),
        sa.Column("idempotency_key", sa.String(64), nullable=False),
    )
    op.create_index("ix_upstream_request_messages_key", "upstream_request_messages", ["idempotency_key"])


def downgrade() -> None:
    op.drop_index("ix_upstream_request_messages_key", "upstream_request_messages")
    op.drop_table("upstream_request_messages")
    op.drop_index("ix_upstream_requests_created", "upstream_requests")
    op.drop_table("upstream_requests")
