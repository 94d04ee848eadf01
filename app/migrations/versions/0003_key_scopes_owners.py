"""API key scopes, and the key that owns each dataset, recommendation, job and sweep.

Existing keys become ``admin``: before this revision every key could read and change every object,
and an admin key still can, so no deployment loses access by upgrading (narrower keys are created
with ``autodistiller keys create NAME --scope read|write``). Existing rows get no owner (NULL):
only admin keys see them, and with auth off everything is shared as before.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

OWNED = ("datasets", "recommendations", "jobs", "sweeps")


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("scope", sa.String(16), nullable=True))
    op.execute("UPDATE api_keys SET scope = 'admin'")
    # NOT NULL without a server default: a key inserted without a scope is an error, never admin
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column("scope", existing_type=sa.String(16), nullable=False)
    for table in OWNED:
        op.add_column(table, sa.Column("owner_key_id", sa.String(32), nullable=True))
        op.create_index(f"ix_{table}_owner_key_id", table, ["owner_key_id"])


def downgrade() -> None:
    for table in OWNED:
        op.drop_index(f"ix_{table}_owner_key_id", table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("owner_key_id")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("scope")
