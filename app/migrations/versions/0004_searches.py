"""Searches: budgeted successive-halving searches whose trials are ordinary jobs.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # New tables only: jobs are untouched (a trial's rungs are ordinary jobs).
    op.create_table(
        "searches",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("dataset_id", sa.String(32), sa.ForeignKey("datasets.id"), nullable=False),
        sa.Column("portfolio", sa.JSON(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("best_trial", sa.Integer()),
        sa.Column("best_job_id", sa.String(32), sa.ForeignKey("jobs.id")),
        sa.Column("stop_reason", sa.Text()),
        sa.Column("driver_id", sa.String(100)),
        sa.Column("driver_lease_until", TS),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("finished_at", TS),
        sa.Column("owner_key_id", sa.String(32)),
    )
    op.create_index("ix_searches_status", "searches", ["status"])
    op.create_index("ix_searches_owner_key_id", "searches", ["owner_key_id"])
    op.create_table(
        "search_trials",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "search_id", sa.String(32), sa.ForeignKey("searches.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("portfolio_rank", sa.Integer()),
        sa.Column("kd_config", sa.JSON(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("rungs", sa.JSON(), nullable=False),
        sa.Column("target_epochs", sa.Integer()),
        sa.Column("job_id", sa.String(32), sa.ForeignKey("jobs.id")),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("search_id", "number", name="uq_search_trials_search_number"),
    )
    op.create_index("ix_search_trials_search_id", "search_trials", ["search_id"])
    op.create_index("ix_search_trials_job_id", "search_trials", ["job_id"])
    op.create_table(
        "search_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "search_id", sa.String(32), sa.ForeignKey("searches.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_search_events_search_id", "search_events", ["search_id"])


def downgrade() -> None:
    op.drop_table("search_events")
    op.drop_table("search_trials")
    op.drop_table("searches")
