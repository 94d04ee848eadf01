"""/datasets: upload or register, list, read, delete."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Response, UploadFile

from app.deps import Limit, Offset, ServicesDep, WriteAccess
from app.errors import InvalidRequestError
from app.schemas.common import errors
from app.schemas.datasets import BuiltinDatasetPublic, BuiltinDatasetsPublic, DatasetPublic, DatasetsPublic
from app.services.datasets import UploadOptions

router = APIRouter(prefix="/datasets", tags=["datasets"])

OptionalText = Annotated[str | None, Form(max_length=200)]


@router.post("", status_code=201, dependencies=[WriteAccess], responses=errors(401, 404, 413, 422, 424))
def create_dataset(
    services: ServicesDep,
    file: Annotated[UploadFile | None, File(description="CSV, TSV, JSON lines or Parquet")] = None,
    builtin: Annotated[str | None, Form(max_length=100, description="a built-in dataset instead")] = None,
    name: OptionalText = None,
    text_column: OptionalText = None,
    text_pair_column: OptionalText = None,
    label_column: OptionalText = None,
    split_column: OptionalText = None,
    group_column: OptionalText = None,
    task_kind: Annotated[Literal["classification", "regression"] | None, Form()] = None,
    dev_fraction: Annotated[float, Form(gt=0.0, lt=1.0)] = 0.1,
) -> DatasetPublic:
    """Upload a table (multipart) or register a built-in dataset; it is validated and its
    meta-features are computed before it is stored."""
    if (file is None) == (builtin is None):
        raise InvalidRequestError("give exactly one of file and builtin")
    if file is not None:
        options = UploadOptions(
            text_column, text_pair_column, label_column, task_kind, split_column, group_column, dev_fraction
        )
        dataset = services.datasets.upload(file.file, file.filename or "", options, name)
    else:
        dataset = services.datasets.register_builtin(builtin or "", name)
    return DatasetPublic.of(dataset)


@router.get("")
def list_datasets(services: ServicesDep, offset: Offset = 0, limit: Limit = 50) -> DatasetsPublic:
    data, count = services.store.datasets.list(offset=offset, limit=limit)
    return DatasetsPublic(data=[DatasetPublic.of(d) for d in data], count=count)


@router.get("/builtin")
def list_builtin_datasets(services: ServicesDep) -> BuiltinDatasetsPublic:
    """Built-in datasets installed on this server (register one with ``POST /datasets builtin=...``)."""
    data = [BuiltinDatasetPublic(**b) for b in services.datasets.builtins()]
    return BuiltinDatasetsPublic(data=data, count=len(data))


@router.get("/{dataset_id}", responses=errors(404))
def get_dataset(services: ServicesDep, dataset_id: str) -> DatasetPublic:
    return DatasetPublic.of(services.store.datasets.get(dataset_id))


@router.delete("/{dataset_id}", status_code=204, dependencies=[WriteAccess], responses=errors(401, 404, 409))
def delete_dataset(services: ServicesDep, dataset_id: str) -> Response:
    """Delete a dataset no queued or running job uses (past jobs and sweep records keep it)."""
    services.datasets.delete(dataset_id)
    return Response(status_code=204)
