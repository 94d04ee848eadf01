"""Dataset schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from app.domain import Dataset


class DatasetPublic(BaseModel):
    id: str
    name: str
    source: str
    builtin_name: str | None
    filename: str | None
    digest: str
    task_kind: str
    num_labels: int | None
    labels: list[Any] | None
    n_train: int
    n_dev: int
    options: dict[str, Any]
    meta_features: dict[str, float | None]
    created_at: datetime

    @classmethod
    def of(cls, d: Dataset) -> DatasetPublic:
        return cls(**{name: getattr(d, name) for name in cls.model_fields})


class DatasetsPublic(BaseModel):
    data: list[DatasetPublic]
    count: int


class BuiltinDatasetPublic(BaseModel):
    name: str
    description: str


class BuiltinDatasetsPublic(BaseModel):
    data: list[BuiltinDatasetPublic]
    count: int
