"""Resellers and partner controls: child accounts with a rate, transfers that name each other in
the ledger, per-partner message rate limits (token buckets) and IP allow-lists.

Revision ID: 0009
Revises: 0006
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("partners") as batch:
        batch.add_column(sa.Column("parent_id", sa.String(64)))
        batch.add_column(sa.Column("rate", sa.BigInteger, nullable=False, server_default=sa.text("100")))
        batch.add_column(sa.Column("max_mps", sa.Integer))
        batch.add_column(sa.Column("allowed_ips", sa.String(2000)))
    op.create_index("ix_partners_parent", "partners", ["parent_id"])
    with op.batch_alter_table("ledger") as batch:
        batch.add_column(sa.Column("counterpart_id", sa.BigInteger))
    op.create_index("ix_ledger_partner_time", "ledger", ["partner_id", "created_at"])
    op.create_table(
        "rate_buckets",
        sa.Column("partner_id", sa.String(64), primary_key=True),
        sa.Column("tokens", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rate_buckets")
    op.drop_index("ix_ledger_partner_time", "ledger")
    with op.batch_alter_table("ledger") as batch:
        batch.drop_column("counterpart_id")
    op.drop_index("ix_partners_parent", "partners")
    with op.batch_alter_table("partners") as batch:
        batch.drop_column("allowed_ips")
        batch.drop_column("max_mps")
        batch.drop_column("rate")
        batch.drop_column("parent_id")
