"""Recommendation schemas."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.schemas.common import ModelDescriptorPublic
from models.config import KDConfig, ModelPath, StudentSpec

# Largest magnitude of an inline meta-feature (n_train and teacher_params stay far below it).
MAX_META_FEATURE = 1e15
# The meta-feature keys ``recommender.meta_features`` computes (its module docstring lists them).
# Inline meta-features must use these: an unknown key (a typo) would otherwise be silently ignored.
META_FEATURE_KEYS = frozenset(
    (
        "n_train",
        "log_n_train",
        "n_labels",
        "is_regression",
        "is_pair",
        "label_entropy",
        "label_imbalance",
        "len_mean",
        "len_p50",
        "len_p90",
        "len_in_student_tokens",
        "type_token_ratio",
        "unk_rate",
        *(f"emb_{i}" for i in range(8)),
        "teacher_layers",
        "teacher_hidden",
        "teacher_params",
        "teacher_score",
    )
)


class StudentBudget(BaseModel):
    """Limits on the student when none is named: candidates are students derived from the teacher."""

    model_config = ConfigDict(extra="forbid")

    max_params: int | None = Field(
        None, ge=1, le=10**12, description="most parameters (estimated from the config)"
    )
    max_layers: int | None = Field(None, ge=1, le=48, description="most transformer layers")

    @model_validator(mode="after")
    def _check(self) -> StudentBudget:
        if self.max_params is None and self.max_layers is None:
            raise ValueError("budget needs max_params or max_layers")
        return self


class RecommendRequest(BaseModel):
    """A dataset (by id, or inline meta-features), a teacher, a student (or a budget), and k."""

    model_config = ConfigDict(extra="forbid")

    dataset_id: str | None = Field(None, min_length=1, max_length=64)
    meta_features: dict[str, float | None] | None = Field(
        None,
        description="inline meta-features (keys of recommender.meta_features) instead of a dataset",
    )
    task_kind: Literal["classification", "regression"] | None = Field(
        None, description="needed with inline meta-features that lack is_regression"
    )
    teacher: ModelPath = Field("minilm-l6", description="built-in name or model path")
    student: StudentSpec | None = None
    budget: StudentBudget | None = None
    k: int = Field(5, ge=1, le=100)

    @model_validator(mode="after")
    def _check(self) -> RecommendRequest:
        if (self.dataset_id is None) == (self.meta_features is None):
            raise ValueError("give exactly one of dataset_id and meta_features")
        unknown = sorted(k for k in self.meta_features or {} if k not in META_FEATURE_KEYS)
        if unknown:  # named, but bounded: the message never echoes a huge key or thousands of them
            shown = ", ".join(repr(k[:40]) for k in unknown[:5])
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            raise ValueError(f"unknown meta_features key(s): {shown}{more}")
        bad = [k for k, v in (self.meta_features or {}).items() if v is not None and not math.isfinite(v)]
        if bad:  # JSON has no NaN or Infinity (a missing feature is null)
            raise ValueError(f"meta_features must be finite numbers or null: {', '.join(sorted(bad))}")
        huge = [
            k for k, v in (self.meta_features or {}).items() if v is not None and abs(v) > MAX_META_FEATURE
        ]
        if huge:  # beyond any dataset or teacher (squared distances would overflow)
            raise ValueError(
                f"meta_features must lie within +-{MAX_META_FEATURE:.0e}: {', '.join(sorted(huge))}"
            )
        if self.student is not None and self.budget is not None:
            raise ValueError("give a student or a budget, not both")
        return self


class NearestDataset(BaseModel):
    """A past dataset similar to this one, and what worked there."""

    dataset: str = Field(description="the past dataset's name (size variant included)")
    similarity: float = Field(
        ge=0, le=1, description="1 = same meta-features; 0.5 = a typical pair of past datasets"
    )
    student: str | None = Field(None, description="the student whose runs are summarised")
    best_pipeline: str | None = Field(None, description="the best pipeline tried there, in words")
    best_ratio: float | None = Field(None, description="its student score / teacher score")
    mean_ratio: float | None = Field(None, description="the mean ratio of all pipelines tried there")


class Driver(BaseModel):
    """A component of the pick and its predicted effect against the alternatives for it."""

    component: str = Field(description="intermediate, prediction, mixup, augmentation or weights")
    choice: str = Field(description="the pick's option, in words")
    effect: float = Field(
        description="predicted ratio minus the mean over the other options of this component"
    )
    text: str


class Alternative(BaseModel):
    """The best pipeline that differs from the pick in one component, and what it would give."""

    component: str
    choice: str = Field(description="the alternative option, in words")
    predicted_ratio: float


class RecommendationExplanation(BaseModel):
    """Why a pipeline was picked, for people."""

    text: str
    nearest_datasets: list[NearestDataset]
    drivers: list[Driver] = Field(description="the components that drive the pick, largest effect first")
    alternatives: list[Alternative] = Field(description="per component, the best alternative, best first")
    top_features: list[tuple[str, float]] = Field(description="(choice, effect) pairs of the drivers")


class RecommendedPipeline(BaseModel):
    """One pick of the portfolio; items come in pick order (each student's picks in turn)."""

    rank: int
    kd_config: KDConfig
    student: StudentSpec
    student_descriptor: ModelDescriptorPublic
    predicted_ratio: float = Field(description="predicted student score / teacher score")
    interval: tuple[float, float] = Field(
        description="conformal interval of the ratio, calibrated on held-out source tasks; holds the point"
    )
    interval_coverage: float | None = Field(
        None, description="the interval's target coverage (e.g. 0.8); null if it could not be calibrated"
    )
    expected_best_of_k: float | None = Field(
        None,
        description="expected best ratio among this student's picks up to this one, under the model's "
        "measured error (the portfolio's objective)",
    )
    # answers stored before explanations were structured keep their free-form dict
    explanation: RecommendationExplanation | dict[str, Any]


class RecommendationPublic(BaseModel):
    id: str
    dataset_id: str | None
    teacher: ModelDescriptorPublic
    meta_learner_version: int | None
    items: list[RecommendedPipeline]
    created_at: datetime
