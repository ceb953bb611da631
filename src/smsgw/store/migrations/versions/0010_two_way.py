"""Two-way messaging: inbound messages and their forwards, keywords, opt-out lists, promotional
shortcodes.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("partners") as batch:
        batch.add_column(sa.Column("inbound_url", sa.String(2000)))
        batch.add_column(sa.Column("inbound_method", sa.String(8)))
        batch.add_column(sa.Column("inbound_auto_reply", sa.SmallInteger, nullable=False, server_default=sa.text("0")))
    with op.batch_alter_table("shortcodes") as batch:
        batch.add_column(sa.Column("promotional", sa.SmallInteger, nullable=False, server_default=sa.text("0")))
    op.create_table(
        "shortcode_keywords",
        sa.Column("shortcode", sa.String(32), primary_key=True),
        sa.Column("keyword", sa.String(32), primary_key=True),
        sa.Column("partner_id", sa.String(64), sa.ForeignKey("partners.id"), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "optouts",
        sa.Column("partner_id", sa.String(64), primary_key=True),
        sa.Column("shortcode", sa.String(32), primary_key=True),
        sa.Column("msisdn", sa.String(20), primary_key=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "inbound_parts",
        sa.Column("msisdn", sa.String(20), primary_key=True),
        sa.Column("shortcode", sa.String(32), primary_key=True),
        sa.Column("reference", sa.Integer, primary_key=True),
        sa.Column("total", sa.SmallInteger, primary_key=True),
        sa.Column("part_no", sa.SmallInteger, primary_key=True),
        sa.Column("data_coding", sa.SmallInteger, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("received_at", sa.BigInteger, nullable=False),
        sa.Column("message_id", sa.BigInteger),
    )
    op.create_index("ix_inbound_parts_received", "inbound_parts", ["received_at"])
    op.create_table(
        "inbound_messages",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("shortcode", sa.String(32), nullable=False),
        sa.Column("msisdn", sa.String(20), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("partner_id", sa.String(64)),
        sa.Column("keyword", sa.String(32)),
        sa.Column("parts", sa.SmallInteger, nullable=False),
        sa.Column("complete", sa.SmallInteger, nullable=False),
        sa.Column("received_at", sa.BigInteger, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("next_attempt_at", sa.BigInteger),
        sa.Column("lease_until", sa.BigInteger),
        sa.Column("forwarded_at", sa.BigInteger),
        sa.Column("last_error", sa.String(200)),
        sa.Column("reply_id", sa.BigInteger),
    )
    op.create_index("ix_inbound_partner", "inbound_messages", ["partner_id", "id"])
    op.create_index("ix_inbound_due", "inbound_messages", ["forwarded_at", "next_attempt_at"])
    op.create_index("ix_inbound_sender", "inbound_messages", ["msisdn", "received_at"])


def downgrade() -> None:
    op.drop_table("inbound_messages")
    op.drop_table("inbound_parts")
    op.drop_table("optouts")
    op.drop_table("shortcode_keywords")
    with op.batch_alter_table("shortcodes") as batch:
        batch.drop_column("promotional")
    with op.batch_alter_table("partners") as batch:
        batch.drop_column("inbound_auto_reply")
        batch.drop_column("inbound_method")
        batch.drop_column("inbound_url")
