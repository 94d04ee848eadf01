"""/sweeps: plan and queue a sweep, follow its progress, export its sweep records."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.deps import Limit, Offset, ReadCaller, ServicesDep, WriteCaller
from app.schemas.common import errors
from app.schemas.sweeps import SweepCreate, SweepPublic, SweepRecordDictsPublic, SweepsPublic

router = APIRouter(prefix="/sweeps", tags=["sweeps"])


@router.post("", status_code=202, responses=errors(401, 403, 404, 422, 424))
def create_sweep(
    services: ServicesDep, caller: WriteCaller, body: SweepCreate, response: Response
) -> SweepPublic:
    """Plan ``budget`` pipelines per (dataset, student) pair and queue one job per run (202).

    Runs already answered (a succeeded, queued or running job, or a sweep record with the same
    run key) get no new job, so posting the same sweep again resumes it without repeating work.
    """
    sweep = services.sweeps.create(body, caller)
    response.headers["Location"] = f"/sweeps/{sweep.id}"
    return SweepPublic.of(*services.sweeps.get(sweep.id, caller))


@router.get("", responses=errors(401))
def list_sweeps(
    services: ServicesDep, caller: ReadCaller, offset: Offset = 0, limit: Limit = 50
) -> SweepsPublic:
    data, count = services.sweeps.list(offset=offset, limit=limit, caller=caller)
    return SweepsPublic(data=[SweepPublic.of(s, runs, with_runs=False) for s, runs in data], count=count)


@router.get("/{sweep_id}", responses=errors(401, 404))
def get_sweep(services: ServicesDep, caller: ReadCaller, sweep_id: str) -> SweepPublic:
    """Progress (runs per state), the best finished run so far, and every run."""
    return SweepPublic.of(*services.sweeps.get(sweep_id, caller))


@router.get("/{sweep_id}/records", responses=errors(401, 404))
def sweep_records(services: ServicesDep, caller: ReadCaller, sweep_id: str) -> SweepRecordDictsPublic:
    """The sweep records of the sweep's finished runs, each with ``raw.run_key``."""
    records = services.sweeps.records(sweep_id, caller)
    return SweepRecordDictsPublic(data=records, count=len(records))
