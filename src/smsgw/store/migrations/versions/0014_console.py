"""The web console: operators, partners' portal passwords, browser sessions, the audit log,
and the indexes of its message searches.

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0012"
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_index("ix_messages_msisdn", "messages", ["msisdn", "partner_id", "id"])
    op.create_index("ix_messages_partner", "messages", ["partner_id", "id"])
    op.create_index("ix_callbacks_message", "callbacks", ["message_id"])
    op.create_table(
        "operators",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "portal_passwords",
        sa.Column("partner_id", sa.String(64), sa.ForeignKey("partners.id"), primary_key=True),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "web_sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("area", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_web_sessions_expires", "web_sessions", ["expires_at"])
    op.create_index("ix_web_sessions_subject", "web_sessions", ["area", "subject"])
    op.create_table(
        "audit_log",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("operator", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("detail", sa.String(2000), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_audit_log_created", "audit_log", ["created_at"])


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_table("web_sessions")
    op.drop_table("portal_passwords")
    op.drop_table("operators")
    op.drop_index("ix_callbacks_message", "callbacks")
    op.drop_index("ix_messages_partner", "messages")
    op.drop_index("ix_messages_msisdn", "messages")
