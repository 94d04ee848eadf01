"""/datasets: upload or register, list, read, delete."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, Response, UploadFile

from app.deps import Limit, Offset, ReadAccess, ReadCaller, ServicesDep, WriteAccess, WriteCaller
from app.errors import InvalidRequestError
from app.schemas.common import errors
from app.schemas.datasets import BuiltinDatasetPublic, BuiltinDatasetsPublic, DatasetPublic, DatasetsPublic
from app.services.datasets import UploadOptions
from models.data.assemble import MAX_DEV_FRACTION

router = APIRouter(prefix="/datasets", tags=["datasets"])

# Upload form bounds: short, printable names; the loader's own dev_fraction range; known encodings.
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
OptionalText = Annotated[str | None, Form(max_length=200, pattern=_PRINTABLE)]
BuiltinName = Annotated[
    str | None,
    Form(max_length=100, pattern=r"^[a-z0-9_]+(@[0-9]{1,9})?$", description="a built-in dataset instead"),
]
Encoding = Annotated[
    str | None,
    Form(max_length=40, pattern=r"^[A-Za-z0-9_.:-]+$", description="text encoding when not UTF-8"),
]
_FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def _form_content(request: Request) -> None:
    """A body in another format (JSON, say) is a 415 that says what to send, not a vague 422."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media and media not in _FORM_TYPES:
        raise HTTPException(415, f"send multipart/form-data (a file) or a form (builtin), not {media[:60]}")


@router.post(
    "",
    status_code=201,
    dependencies=[WriteAccess, Depends(_form_content)],
    responses=errors(401, 403, 404, 413, 415, 422, 424),
)
def create_dataset(
    services: ServicesDep,
    caller: WriteCaller,
    file: Annotated[UploadFile | None, File(description="CSV, TSV, JSON lines or Parquet")] = None,
    builtin: BuiltinName = None,
    name: OptionalText = None,
    text_column: OptionalText = None,
    text_pair_column: OptionalText = None,
    label_column: OptionalText = None,
    split_column: OptionalText = None,
    group_column: OptionalText = None,
    task_kind: Annotated[Literal["classification", "regression"] | None, Form()] = None,
    dev_fraction: Annotated[float, Form(gt=0.0, le=MAX_DEV_FRACTION)] = 0.1,
    encoding: Encoding = None,
) -> DatasetPublic:
    """Upload a table (multipart) or register a built-in dataset; it is validated and its
    meta-features are computed before it is stored."""
    if (file is None) == (builtin is None):
        raise InvalidRequestError("give exactly one of file and builtin")
    if file is not None:
        options = UploadOptions(
            text_column, text_pair_column, label_column, task_kind, split_column, group_column, dev_fraction,
            encoding,
        )  # fmt: skip
        dataset = services.datasets.upload(file.file, file.filename or "", options, name, caller)
    else:
        dataset = services.datasets.register_builtin(builtin or "", name, caller)
    return DatasetPublic.of(dataset)


@router.get("", responses=errors(401))
def list_datasets(
    services: ServicesDep, caller: ReadCaller, offset: Offset = 0, limit: Limit = 50
) -> DatasetsPublic:
    """The caller's datasets and every built-in one (an admin key: all)."""
    data, count = services.store.datasets.list(offset=offset, limit=limit, owner=caller.owner)
    return DatasetsPublic(data=[DatasetPublic.of(d) for d in data], count=count)


@router.get("/builtin", dependencies=[ReadAccess], responses=errors(401))
def list_builtin_datasets(services: ServicesDep) -> BuiltinDatasetsPublic:
    """Built-in datasets installed on this server (register one with ``POST /datasets builtin=...``)."""
    data = [BuiltinDatasetPublic(**b) for b in services.datasets.builtins()]
    return BuiltinDatasetsPublic(data=data, count=len(data))


@router.get("/{dataset_id}", responses=errors(401, 404))
def get_dataset(services: ServicesDep, caller: ReadCaller, dataset_id: str) -> DatasetPublic:
    return DatasetPublic.of(services.store.datasets.get(dataset_id, owner=caller.owner))


@router.delete("/{dataset_id}", status_code=204, responses=errors(401, 403, 404, 409))
def delete_dataset(services: ServicesDep, caller: WriteCaller, dataset_id: str) -> Response:
    """Delete a dataset no queued or running job uses (past jobs and sweep records keep it)."""
    services.datasets.delete(dataset_id, caller)
    return Response(status_code=204)
