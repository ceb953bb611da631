"""Server secrets: the HMAC secret of API key hashes, generated once per store.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import secrets
import time

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "server_secrets",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.String(200), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    # Generated here, once, so that every API process on a shared store hashes alike; the
    # migration's own random source keeps it out of any file or log.
    op.bulk_insert(table, [{"name": "api_key_hmac", "value": secrets.token_hex(32), "created_at": int(time.time() * 1000)}])


def downgrade() -> None:
    op.drop_table("server_secrets")
