"""/meta-learner and /sweep-records."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query

from app.deps import AdminAccess, Limit, Offset, ReadAccess, ReadCaller, ServicesDep
from app.schemas.common import errors
from app.schemas.meta_learner import (
    MetaLearnerPublic,
    MetaLearnerVersionPublic,
    RefitRequest,
    SweepRecordPublic,
    SweepRecordsPublic,
)

router = APIRouter(tags=["meta-learner"])


@router.get("/meta-learner", dependencies=[ReadAccess], responses=errors(401))
def get_meta_learner(services: ServicesDep) -> MetaLearnerPublic:
    """The active version, its evaluation, and the records it could be refit on."""
    info = services.meta_learners.describe()
    return MetaLearnerPublic(
        available=info["available"],
        active=MetaLearnerVersionPublic.of(info["active"]) if info["active"] else None,
        records=info["records"],
        new_records=info["new_records"],
        auto_refit_every=info["auto_refit_every"],
        history=[MetaLearnerVersionPublic.of(v) for v in info["history"]],
    )


@router.post(
    "/meta-learner/refit", status_code=201, dependencies=[AdminAccess], responses=errors(401, 403, 409)
)
def refit_meta_learner(
    services: ServicesDep, body: Annotated[RefitRequest | None, Body()] = None
) -> MetaLearnerVersionPublic:
    """Fit a new version on every sweep record in the database and make it active (an admin key:
    the meta-learner is shared by every key)."""
    version = services.meta_learners.refit(evaluate=(body or RefitRequest()).evaluate)
    return MetaLearnerVersionPublic.of(version)


@router.get("/sweep-records", responses=errors(401))
def list_sweep_records(
    services: ServicesDep,
    caller: ReadCaller,
    job_id: Annotated[str | None, Query(max_length=64)] = None,
    dataset_id: Annotated[str | None, Query(max_length=64)] = None,
    source: Literal["own", "imported"] | None = None,
    offset: Offset = 0,
    limit: Limit = 50,
) -> SweepRecordsPublic:
    """Stored sweep records: those of the caller's jobs and the imported history (an admin key:
    all). Every record, whoever's job made it, feeds the shared meta-learner."""
    data, count = services.store.sweep_records.list(
        job_id=job_id, dataset_id=dataset_id, source=source, owner=caller.owner, offset=offset, limit=limit
    )
    return SweepRecordsPublic(data=[SweepRecordPublic.of(r) for r in data], count=count)
