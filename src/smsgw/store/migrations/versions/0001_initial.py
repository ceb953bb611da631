"""Partners, shortcodes, ledger, messages, idempotency keys, id blocks.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "partners",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("api_key_hash", sa.String(200), nullable=False),
        sa.Column("balance", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="active"),
        sa.Column("callback_url", sa.String(2000)),
        sa.Column("callback_secret", sa.String(200)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "shortcodes",
        sa.Column("shortcode", sa.String(32), primary_key=True),
        sa.Column("partner_id", sa.String(64), sa.ForeignKey("partners.id"), nullable=False),
        sa.Column("networks", sa.String(200)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "ledger",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("partner_id", sa.String(64), sa.ForeignKey("partners.id"), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("balance_after", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("reference", sa.String(200), nullable=False),
        sa.Column("message_count", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("batch_id", sa.BigInteger),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_ledger_partner", "ledger", ["partner_id", "id"])
    op.create_index("ix_ledger_batch", "ledger", ["batch_id"])
    op.create_table(
        "messages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=False),
        sa.Column("partner_id", sa.String(64), nullable=False),
        sa.Column("shortcode", sa.String(32), nullable=False),
        sa.Column("msisdn", sa.String(20), nullable=False),
        sa.Column("network_id", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("data_coding", sa.SmallInteger, nullable=False),
        sa.Column("parts", sa.SmallInteger, nullable=False),
        sa.Column("cost", sa.BigInteger, nullable=False),
        sa.Column("clientsmsid", sa.String(200)),
        sa.Column("priority", sa.SmallInteger, nullable=False),
        sa.Column("state", sa.SmallInteger, nullable=False),
        sa.Column("due_at", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("batch_id", sa.BigInteger, nullable=False),
        sa.Column("attempts", sa.SmallInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_until", sa.BigInteger),
        sa.Column("submitted_at", sa.BigInteger),
        sa.Column("done_at", sa.BigInteger),
        sa.Column("error", sa.String(200)),
    )
    op.create_index("ix_messages_due", "messages", ["state", "priority", "due_at", "id"])
    op.create_table(
        "idempotency_keys",
        sa.Column("partner_id", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("body_sha256", sa.String(64), nullable=False),
        sa.Column("response", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_idempotency_created", "idempotency_keys", ["created_at"])
    id_blocks = op.create_table(
        "id_blocks",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("next_value", sa.BigInteger, nullable=False),
    )
    # Message ids start high enough to look like ids and never collide with a row count.
    op.bulk_insert(id_blocks, [{"name": "message", "next_value": 10_000_000}])


def downgrade() -> None:
    for table in ("id_blocks", "idempotency_keys", "messages", "ledger", "shortcodes", "partners"):
        op.drop_table(table)
