"""Callback and inbound URLs lead to public addresses unless the operator allowed private ones
for the partner.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("partners") as batch:
        batch.add_column(sa.Column("callback_allow_private", sa.SmallInteger, nullable=False, server_default=sa.text("0")))


def downgrade() -> None:
    with op.batch_alter_table("partners") as batch:
        batch.drop_column("callback_allow_private")
