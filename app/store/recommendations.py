"""Recommendations, kept so a job can be submitted as (recommendation id, rank)."""

from __future__ import annotations

import uuid
from dataclasses import fields
from typing import Any

from app.db.engine import Database
from app.db.group_commit import GroupCommit
from app.db.tables import RecommendationRow
from app.domain import Recommendation, utcnow
from app.errors import NotFoundError


def _to_domain(row: RecommendationRow) -> Recommendation:
    return Recommendation(
        id=row.id,
        dataset_id=row.dataset_id,
        meta_features=dict(row.meta_features),
        teacher=dict(row.teacher),
        k=row.k,
        meta_learner_version=row.meta_learner_version,
        items=list(row.items),
        created_at=row.created_at,
        owner_key_id=row.owner_key_id,
    )


def _row(rec: Recommendation) -> dict[str, Any]:
    """The row's values (shallow: dataclasses.asdict would deep-copy the items)."""
    return {f.name: getattr(rec, f.name) for f in fields(rec)}


class RecommendationStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._inserts = GroupCommit(db, RecommendationRow.__table__)

    @staticmethod
    def new(
        *,
        dataset_id: str | None,
        meta_features: dict[str, Any],
        teacher: dict[str, Any],
        k: int,
        meta_learner_version: int | None,
        items: list[dict[str, Any]],
        owner_key_id: str | None = None,
    ) -> Recommendation:
        """A recommendation with a fresh id, not stored yet (:meth:`save`)."""
        return Recommendation(
            id=uuid.uuid4().hex,
            dataset_id=dataset_id,
            meta_features=meta_features,
            teacher=teacher,
            k=k,
            meta_learner_version=meta_learner_version,
            items=items,
            created_at=utcnow(),
            owner_key_id=owner_key_id,
        )

    # Once per /recommend: concurrent requests share a transaction (group commit), and a plain
    # INSERT skips the ORM's unit of work, which cost more than the statement itself.
    def save(self, rec: Recommendation) -> Recommendation:
        """Store ``rec``; return it once committed."""
        self._inserts.insert(_row(rec))
        return rec

    async def save_async(self, rec: Recommendation) -> Recommendation:
        """:meth:`save` for a coroutine: the rows of one event-loop turn share a transaction."""
        await self._inserts.insert_async(_row(rec))
        return rec

    def get(self, recommendation_id: str, *, owner: str | None = None) -> Recommendation:
        """A recommendation; with ``owner``, only one that key asked for."""
        with self.db.read() as s:
            row = s.get(RecommendationRow, recommendation_id)
            if row is None or (owner is not None and row.owner_key_id != owner):
                raise NotFoundError("recommendation", recommendation_id)
            return _to_domain(row)
