"""Recommendations, kept so a job can be submitted as (recommendation id, rank)."""

from __future__ import annotations

import uuid
from typing import Any

from app.db.engine import Database
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
    )


class RecommendationStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(
        self,
        *,
        dataset_id: str | None,
        meta_features: dict[str, Any],
        teacher: dict[str, Any],
        k: int,
        meta_learner_version: int | None,
        items: list[dict[str, Any]],
    ) -> Recommendation:
        with self.db.write() as s:
            row = RecommendationRow(
                id=uuid.uuid4().hex,
                dataset_id=dataset_id,
                meta_features=meta_features,
                teacher=teacher,
                k=k,
                meta_learner_version=meta_learner_version,
                items=items,
                created_at=utcnow(),
            )
            s.add(row)
            s.flush()
            return _to_domain(row)

    def get(self, recommendation_id: str) -> Recommendation:
        with self.db.read() as s:
            row = s.get(RecommendationRow, recommendation_id)
            if row is None:
                raise NotFoundError("recommendation", recommendation_id)
            return _to_domain(row)
