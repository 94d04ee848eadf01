"""Recommendation schemas."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.schemas.common import ModelDescriptorPublic
from models.config import KDConfig, StudentSpec


class StudentBudget(BaseModel):
    """Limits on the student when none is named: candidates are students derived from the teacher."""

    model_config = ConfigDict(extra="forbid")

    max_params: int | None = Field(None, ge=1, description="most parameters (estimated from the config)")
    max_layers: int | None = Field(None, ge=1, le=48, description="most transformer layers")

    @model_validator(mode="after")
    def _check(self) -> StudentBudget:
        if self.max_params is None and self.max_layers is None:
            raise ValueError("budget needs max_params or max_layers")
        return self


class RecommendRequest(BaseModel):
    """A dataset (by id, or inline meta-features), a teacher, a student (or a budget), and k."""

    model_config = ConfigDict(extra="forbid")

    dataset_id: str | None = None
    meta_features: dict[str, float | None] | None = Field(
        None, description="inline meta-features (keys of recommender.meta_features) instead of a dataset"
    )
    task_kind: Literal["classification", "regression"] | None = Field(
        None, description="needed with inline meta-features that lack is_regression"
    )
    teacher: str = Field("minilm-l6", min_length=1, max_length=500, description="built-in name or model path")
    student: StudentSpec | None = None
    budget: StudentBudget | None = None
    k: int = Field(5, ge=1)

    @model_validator(mode="after")
    def _check(self) -> RecommendRequest:
        if (self.dataset_id is None) == (self.meta_features is None):
            raise ValueError("give exactly one of dataset_id and meta_features")
        bad = [k for k, v in (self.meta_features or {}).items() if v is not None and not math.isfinite(v)]
        if bad:  # JSON has no NaN or Infinity (a missing feature is null)
            raise ValueError(f"meta_features must be finite numbers or null: {', '.join(sorted(bad))}")
        if self.student is not None and self.budget is not None:
            raise ValueError("give a student or a budget, not both")
        return self


class RecommendedPipeline(BaseModel):
    rank: int
    kd_config: KDConfig
    student: StudentSpec
    student_descriptor: ModelDescriptorPublic
    predicted_ratio: float
    interval: tuple[float, float]
    explanation: dict[str, Any]


class RecommendationPublic(BaseModel):
    id: str
    dataset_id: str | None
    teacher: ModelDescriptorPublic
    meta_learner_version: int | None
    items: list[RecommendedPipeline]
    created_at: datetime
