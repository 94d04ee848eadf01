"""Datasets: soft-deleted so jobs and sweep records keep a valid reference."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.db.engine import Database
from app.db.tables import DatasetRow, JobRow
from app.domain import Dataset, JobStatus, utcnow
from app.errors import DatasetInUseError, NotFoundError


def _to_domain(row: DatasetRow) -> Dataset:
    return Dataset(
        id=row.id,
        name=row.name,
        source=row.source,
        builtin_name=row.builtin_name,
        filename=row.filename,
        digest=row.digest,
        task_kind=row.task_kind,
        num_labels=row.num_labels,
        labels=row.labels,
        n_train=row.n_train,
        n_dev=row.n_dev,
        options=dict(row.options or {}),
        meta_features=dict(row.meta_features or {}),
        created_at=row.created_at,
    )


class DatasetStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex

    def create(self, dataset: Dataset, path: str | None) -> Dataset:
        """Insert ``dataset`` (its id chosen by the caller, so files can be stored under it first)."""
        with self.db.write() as s:
            row = DatasetRow(
                id=dataset.id,
                name=dataset.name,
                source=dataset.source,
                builtin_name=dataset.builtin_name,
                filename=dataset.filename,
                path=path,
                digest=dataset.digest,
                task_kind=dataset.task_kind,
                num_labels=dataset.num_labels,
                labels=dataset.labels,
                n_train=dataset.n_train,
                n_dev=dataset.n_dev,
                options=dataset.options,
                meta_features=dataset.meta_features,
                created_at=dataset.created_at,
            )
            s.add(row)
            s.flush()
            return _to_domain(row)

    @staticmethod
    def _row(s: Session, dataset_id: str, *, include_deleted: bool = False) -> DatasetRow:
        row = s.get(DatasetRow, dataset_id)
        if row is None or (row.deleted_at is not None and not include_deleted):
            raise NotFoundError("dataset", dataset_id)
        return row

    def get(self, dataset_id: str, *, include_deleted: bool = False) -> Dataset:
        """A dataset; a deleted one only with ``include_deleted`` (jobs and records keep theirs)."""
        with self.db.read() as s:
            return _to_domain(self._row(s, dataset_id, include_deleted=include_deleted))

    def path(self, dataset_id: str) -> str | None:
        """The stored file of an uploaded dataset (None for a built-in one)."""
        with self.db.read() as s:
            return self._row(s, dataset_id).path

    def list(self, *, offset: int = 0, limit: int = 50) -> tuple[list[Dataset], int]:
        live = DatasetRow.deleted_at.is_(None)
        with self.db.read() as s:
            count = s.scalar(select(func.count()).select_from(DatasetRow).where(live)) or 0
            rows = s.scalars(
                select(DatasetRow)
                .where(live)
                .order_by(DatasetRow.created_at.desc(), DatasetRow.id)
                .offset(offset)
                .limit(limit)
            ).all()
            return [_to_domain(r) for r in rows], count

    def delete(self, dataset_id: str) -> str | None:
        """Mark a dataset deleted and return its file path for removal.

        Raises:
            NotFoundError: No such (live) dataset.
            DatasetInUseError: Queued or running jobs use it.
        """
        with self.db.write() as s:
            row = self._row(s, dataset_id)
            active = s.scalar(
                select(func.count())
                .select_from(JobRow)
                .where(
                    JobRow.dataset_id == dataset_id,
                    JobRow.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value]),
                )
            )
            if active:
                raise DatasetInUseError(f"dataset {dataset_id} is used by {active} queued or running job(s)")
            path = row.path
            s.execute(update(DatasetRow).where(DatasetRow.id == dataset_id).values(deleted_at=utcnow()))
            return path
