"""Schemas shared by several resources."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from models.config import ModelDescriptor


class ErrorBody(BaseModel):
    code: str = Field(description="stable machine-readable error code")
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    """Every error the API returns has this shape."""

    error: ErrorBody


class ModelDescriptorPublic(BaseModel):
    """What is known about a teacher or student (missing facts are null)."""

    model_config = ConfigDict(from_attributes=True)

    name: str
    family: str | None = None
    num_layers: int | None = None
    hidden_size: int | None = None
    num_params: int | None = None
    num_heads: int | None = None
    tokenizer_id: str | None = None

    @classmethod
    def of(cls, desc: ModelDescriptor) -> ModelDescriptorPublic:
        return cls.model_validate(desc.to_dict())


# Error responses documented on every route (the status comes from app.errors.STATUS_BY_CODE).
def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": ErrorResponse} for s in statuses}
