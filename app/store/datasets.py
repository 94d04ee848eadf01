"""Datasets: soft-deleted so jobs and sweep records keep a valid reference."""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, func, or_, select, true, update
from sqlalchemy.orm import Session

from app.db.engine import Database
from app.db.tables import DatasetRow, JobRow
from app.domain import Dataset, JobStatus, utcnow
from app.errors import DatasetInUseError, ForbiddenError, NotFoundError


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
        owner_key_id=row.owner_key_id,
    )


def _visible(row: DatasetRow, owner: str | None) -> bool:
    """Whether a caller confined to ``owner`` may read the row: its own, or any built-in dataset."""
    return owner is None or row.owner_key_id == owner or row.source == "builtin"


def _visible_clause(owner: str | None) -> ColumnElement[bool]:
    """:func:`_visible` as SQL."""
    if owner is None:
        return true()
    return or_(DatasetRow.owner_key_id == owner, DatasetRow.source == "builtin")


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
                owner_key_id=dataset.owner_key_id,
            )
            s.add(row)
            s.flush()
            return _to_domain(row)

    @staticmethod
    def _row(
        s: Session, dataset_id: str, *, include_deleted: bool = False, owner: str | None = None
    ) -> DatasetRow:
        row = s.get(DatasetRow, dataset_id)
        if row is None or (row.deleted_at is not None and not include_deleted) or not _visible(row, owner):
            raise NotFoundError("dataset", dataset_id)
        return row

    def get(self, dataset_id: str, *, include_deleted: bool = False, owner: str | None = None) -> Dataset:
        """A dataset; a deleted one only with ``include_deleted`` (jobs and records keep theirs).

        With ``owner``, only that key's datasets and the built-in ones are found.
        """
        with self.db.read() as s:
            return _to_domain(self._row(s, dataset_id, include_deleted=include_deleted, owner=owner))

    def path(self, dataset_id: str) -> str | None:
        """The stored file of an uploaded dataset (None for a built-in one)."""
        with self.db.read() as s:
            return self._row(s, dataset_id).path

    def list(
        self, *, offset: int = 0, limit: int = 50, owner: str | None = None
    ) -> tuple[list[Dataset], int]:
        """A page of live datasets, newest first; with ``owner``, that key's and the built-in ones."""
        live = DatasetRow.deleted_at.is_(None) & _visible_clause(owner)
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

    def delete(self, dataset_id: str, *, owner: str | None = None) -> str | None:
        """Mark a dataset deleted and return its file path for removal.

        Args:
            dataset_id: The dataset.
            owner: Confine to this key's datasets (None: any).

        Raises:
            NotFoundError: No such (live) dataset, or another key's.
            ForbiddenError: A built-in dataset another key registered (every key can read it).
            DatasetInUseError: Queued or running jobs use it.
        """
        with self.db.write() as s:
            row = self._row(s, dataset_id, owner=owner)
            if owner is not None and row.owner_key_id != owner:
                raise ForbiddenError(
                    f"dataset {dataset_id} is a built-in dataset another key registered; "
                    "only that key or an admin key can delete it"
                )
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
