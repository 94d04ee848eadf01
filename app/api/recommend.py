"""/recommend: ranked KD pipelines for a dataset."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from fastapi import APIRouter, Response
from pydantic_core import to_json

from app.deps import ReadCaller, ServicesDep, WriteCaller
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


def _descriptor(data: dict[str, Any]) -> dict[str, Any]:
    return {name: data.get(name) for name in ModelDescriptorPublic.model_fields}


def _render(rec: Recommendation) -> bytes:
    """``RecommendationPublic``'s JSON for a recommendation this process just made, without
    validating its items again: they were built from validated configs a moment ago, and
    re-validating five nested KD configs cost more than the rest of the rendering. The stored
    copy is served through the schema (``GET /recommendations/{id}``); tests check both agree."""
    return to_json(
        {
            "id": rec.id,
            "dataset_id": rec.dataset_id,
            "teacher": _descriptor(rec.teacher["descriptor"]),
            "meta_learner_version": rec.meta_learner_version,
            "items": [
                {
                    "rank": item["rank"],
                    "kd_config": item["kd_config"],
                    "student": item["student"],
                    "student_descriptor": _descriptor(item["student_descriptor"]),
                    "predicted_ratio": item["predicted_ratio"],
                    "interval": item["interval"],
                    "interval_coverage": item.get("interval_coverage"),
                    "expected_best_of_k": item.get("expected_best_of_k"),
                    "explanation": item["explanation"],
                }
                for item in rec.items
            ],
            "created_at": rec.created_at,
        }
    )


# A recommendation never changes once stored, so its JSON is rendered once per process (a repeated
# question gets the stored answer: see app/services/recommend.py) and reused.
_RENDERED: OrderedDict[str, bytes] = OrderedDict()
_RENDERED_SIZE = 256
_rendered_lock = threading.Lock()


def _rendered(rec: Recommendation) -> bytes:
    with _rendered_lock:
        body = _RENDERED.get(rec.id)
        if body is not None:
            _RENDERED.move_to_end(rec.id)
            return body
    body = _render(rec)
    with _rendered_lock:
        _RENDERED[rec.id] = body
        while len(_RENDERED) > _RENDERED_SIZE:
            _RENDERED.popitem(last=False)
    return body


@router.post(
    "/recommend",
    status_code=201,
    response_model=RecommendationPublic,
    responses=errors(401, 403, 404, 422, 424, 503),
)
async def recommend(services: ServicesDep, caller: WriteCaller, body: RecommendRequest) -> Response:
    """Rank pipelines with the active meta-learner; the answer is stored as a recommendation that
    ``POST /jobs`` can reference by id and rank."""
    rec = await services.recommend.recommend_async(body, caller)
    return Response(_rendered(rec), status_code=201, media_type="application/json")


@router.get("/recommendations/{recommendation_id}", responses=errors(401, 404))
def get_recommendation(
    services: ServicesDep, caller: ReadCaller, recommendation_id: str
) -> RecommendationPublic:
    return _public(services.store.recommendations.get(recommendation_id, owner=caller.owner))
