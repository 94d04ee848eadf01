"""/recommend: ranked KD pipelines for a dataset."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import ServicesDep, WriteAccess
from app.domain import Recommendation
from app.schemas.common import ModelDescriptorPublic, errors
from app.schemas.recommend import RecommendationPublic, RecommendedPipeline, RecommendRequest
from models.config import ModelDescriptor

router = APIRouter(tags=["recommend"])


def _public(rec: Recommendation) -> RecommendationPublic:
    return RecommendationPublic(
        id=rec.id,
        dataset_id=rec.dataset_id,
        teacher=ModelDescriptorPublic.of(ModelDescriptor.from_dict(rec.teacher["descriptor"])),
        meta_learner_version=rec.meta_learner_version,
        items=[RecommendedPipeline.model_validate(item) for item in rec.items],
        created_at=rec.created_at,
    )


@router.post(
    "/recommend", status_code=201, dependencies=[WriteAccess], responses=errors(401, 403, 404, 422, 424, 503)
)
def recommend(services: ServicesDep, body: RecommendRequest) -> RecommendationPublic:
    """Rank pipelines with the active meta-learner; the answer is stored as a recommendation that
    ``POST /jobs`` can reference by id and rank."""
    return _public(services.recommend.recommend(body))


@router.get("/recommendations/{recommendation_id}", responses=errors(404))
def get_recommendation(services: ServicesDep, recommendation_id: str) -> RecommendationPublic:
    return _public(services.store.recommendations.get(recommendation_id))
