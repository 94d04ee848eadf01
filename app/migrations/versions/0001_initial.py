"""Initial schema: datasets, recommendations, jobs, job events, sweep records, API keys, meta-learners.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("builtin_name", sa.String(100)),
        sa.Column("filename", sa.String(255)),
        sa.Column("path", sa.Text()),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("task_kind", sa.String(32), nullable=False),
        sa.Column("num_labels", sa.Integer()),
        sa.Column("labels", sa.JSON()),
        sa.Column("n_train", sa.Integer(), nullable=False),
        sa.Column("n_dev", sa.Integer(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("meta_features", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("deleted_at", TS),
    )
    op.create_index("ix_datasets_digest", "datasets", ["digest"])
    op.create_table(
        "recommendations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("dataset_id", sa.String(32), sa.ForeignKey("datasets.id")),
        sa.Column("meta_features", sa.JSON(), nullable=False),
        sa.Column("teacher", sa.JSON(), nullable=False),
        sa.Column("k", sa.Integer(), nullable=False),
        sa.Column("meta_learner_version", sa.Integer()),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("dataset_id", sa.String(32), sa.ForeignKey("datasets.id")),
        sa.Column("recommendation_id", sa.String(32), sa.ForeignKey("recommendations.id")),
        sa.Column("rank", sa.Integer()),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("gpu", sa.Boolean(), nullable=False),
        sa.Column("time_budget_s", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(200), unique=True),
        sa.Column("request_hash", sa.String(64)),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.String(100)),
        sa.Column("lease_expires_at", TS),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("progress", sa.JSON()),
        sa.Column("result", sa.JSON()),
        sa.Column("error_code", sa.String(64)),
        sa.Column("error_message", sa.Text()),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("started_at", TS),
        sa.Column("last_claimed_at", TS),
        sa.Column("finished_at", TS),
    )
    op.create_index("ix_jobs_dataset_id", "jobs", ["dataset_id"])
    op.create_index("ix_jobs_status_created", "jobs", ["status", "created_at"])
    op.create_table(
        "job_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(32), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_job_events_job_id", "job_events", ["job_id"])
    op.create_table(
        "sweep_records",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(32), sa.ForeignKey("jobs.id"), unique=True),
        sa.Column("dataset_id", sa.String(32), sa.ForeignKey("datasets.id")),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.Column("code_version", sa.String(64)),
        sa.Column("hardware", sa.String(200)),
        sa.Column("seed", sa.Integer()),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False, unique=True),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS),
        sa.Column("last_used_at", TS),
    )
    op.create_table(
        "meta_learner_versions",
        sa.Column("version", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("n_records", sa.Integer(), nullable=False),
        sa.Column("records_digest", sa.String(64)),
        sa.Column("evaluation", sa.JSON()),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "meta_learner_versions",
        "api_keys",
        "sweep_records",
        "job_events",
        "jobs",
        "recommendations",
        "datasets",
    ):
        op.drop_table(table)
