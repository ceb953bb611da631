"""Dispatchers report the routes they hold (state, traffic, failovers) with each renewal of
their bind leases, for the console's routes page.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "route_reports",
        sa.Column("route", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("networks", sa.String(200)),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("weight", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("bound", sa.Boolean, nullable=False),
        sa.Column("accepted", sa.BigInteger, nullable=False),
        sa.Column("accepted_recent", sa.BigInteger, nullable=False),
        sa.Column("failovers", sa.Integer, nullable=False),
        sa.Column("since", sa.BigInteger, nullable=False),
        sa.Column("reported_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("route_reports")
