"""Campaigns sent from the portal (an uploaded spreadsheet, its one-time confirmation, the
message id ranges of its messages) and the one-time ids of console forms.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("partner_id", sa.String(64), sa.ForeignKey("partners.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("shortcode", sa.String(32), nullable=False),
        sa.Column("template", sa.Text, nullable=False),
        sa.Column("mobile_column", sa.String(200)),
        sa.Column("upload", sa.LargeBinary),
        sa.Column("confirm_token", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("valid", sa.Integer, nullable=False),
        sa.Column("estimated_cost", sa.BigInteger, nullable=False),
        sa.Column("batches_done", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("accepted", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("refused", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("detail", sa.String(2000)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("confirmed_at", sa.BigInteger),
        sa.Column("heartbeat_at", sa.BigInteger),
        sa.Column("finished_at", sa.BigInteger),
    )
    op.create_index("ix_campaigns_partner", "campaigns", ["partner_id", "id"])
    op.create_table(
        "campaign_ranges",
        sa.Column("campaign_id", sa.BigInteger, sa.ForeignKey("campaigns.id"), primary_key=True),
        sa.Column("first_id", sa.BigInteger, primary_key=True),
        sa.Column("last_id", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "form_submissions",
        sa.Column("area", sa.String(16), primary_key=True),
        sa.Column("subject", sa.String(64), primary_key=True),
        sa.Column("form_id", sa.String(64), primary_key=True),
        sa.Column("result", sa.String(2000), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_form_submissions_created", "form_submissions", ["created_at"])


def downgrade() -> None:
    op.drop_table("form_submissions")
    op.drop_table("campaign_ranges")
    op.drop_index("ix_campaigns_partner", "campaigns")
    op.drop_table("campaigns")
