"""/jobs: submit, list, read, follow (Server-Sent Events), logs, cancel, artifacts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import FileResponse, PlainTextResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from app.api.events import MAX_EVENT_ID, event_stream, parse_last_event_id
from app.deps import Limit, Offset, ReadCaller, ServicesDep, WriteCaller
from app.domain import Job, JobStatus
from app.errors import ArtifactNotReadyError, InvalidRequestError
from app.schemas.common import errors
from app.schemas.jobs import ArtifactName, ArtifactsPublic, JobCreate, JobPublic, JobsPublic
from app.services.container import Services

router = APIRouter(prefix="/jobs", tags=["jobs"])


def _public(services: Services, job: Job) -> JobPublic:
    artifacts = services.artifacts.available(job.id) if job.status == JobStatus.SUCCEEDED else []
    return JobPublic.of(job, artifacts)


@router.post(
    "",
    status_code=202,
    responses={
        200: {"model": JobPublic, "description": "idempotent replay: the job first created"},
        **errors(401, 403, 404, 409, 422, 424),
    },
)
def create_job(
    services: ServicesDep,
    caller: WriteCaller,
    body: JobCreate,
    response: Response,
    idempotency_key: Annotated[
        str | None, Header(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:\-]+$")
    ] = None,
) -> JobPublic:
    """Queue a distillation job (202). Resubmitting with the same idempotency key (body field
    ``idempotency_key`` or header ``Idempotency-Key``) returns the first job (200); the same key
    with a different body is a 409."""
    if idempotency_key is not None:
        if body.idempotency_key not in (None, idempotency_key):
            raise InvalidRequestError("the Idempotency-Key header and body field differ")
        body = body.model_copy(update={"idempotency_key": idempotency_key})
    job, created = services.jobs.submit(body, caller)
    if not created:
        response.status_code = 200
    response.headers["Location"] = f"/jobs/{job.id}"
    return _public(services, job)


@router.get("", responses=errors(401))
def list_jobs(
    services: ServicesDep,
    caller: ReadCaller,
    status: JobStatus | None = None,
    dataset_id: Annotated[str | None, Query(max_length=64)] = None,
    offset: Offset = 0,
    limit: Limit = 50,
) -> JobsPublic:
    data, count = services.jobs.list(
        status=status, dataset_id=dataset_id, offset=offset, limit=limit, caller=caller
    )
    return JobsPublic(data=[_public(services, j) for j in data], count=count)


@router.get("/{job_id}", responses=errors(401, 404))
def get_job(services: ServicesDep, caller: ReadCaller, job_id: str) -> JobPublic:
    return _public(services, services.jobs.get(job_id, caller))


@router.get(
    "/{job_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"},
        **errors(401, 404, 422),
    },
)
async def job_events(
    services: ServicesDep,
    caller: ReadCaller,
    job_id: str,
    after: Annotated[int, Query(ge=0, le=MAX_EVENT_ID, description="send events with a larger id")] = 0,
    timeout_s: Annotated[float, Query(gt=0, le=3600, description="close the stream after this long")] = 600,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
) -> StreamingResponse:
    """Status changes, progress and log lines as Server-Sent Events (``event: status|progress|log``,
    ``id`` = event id, JSON ``data``). Ends with ``event: end`` once the job is finished."""
    await run_in_threadpool(services.jobs.get, job_id, caller)  # 404 before the stream starts
    resumed = parse_last_event_id(last_event_id)  # a 422 now, not a broken stream after the 200
    start = after if resumed is None else resumed
    return StreamingResponse(
        event_stream(services, job_id, start, timeout_s),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/{job_id}/logs", response_class=PlainTextResponse, responses=errors(401, 404))
def job_logs(
    services: ServicesDep,
    caller: ReadCaller,
    job_id: str,
    tail: Annotated[int, Query(ge=1, le=100_000)] = 1000,
) -> PlainTextResponse:
    """The last ``tail`` lines of the job's log (its training process's output)."""
    services.jobs.get(job_id, caller)
    return PlainTextResponse(services.artifacts.log_tail(job_id, tail))


@router.post("/{job_id}/cancel", responses=errors(401, 403, 404, 409))
def cancel_job(services: ServicesDep, caller: WriteCaller, job_id: str) -> JobPublic:
    """Cancel a queued job at once; a running one stops at its next step (its status follows)."""
    return _public(services, services.jobs.cancel(job_id, caller))


@router.get("/{job_id}/artifacts", responses=errors(401, 404))
def list_artifacts(services: ServicesDep, caller: ReadCaller, job_id: str) -> ArtifactsPublic:
    job = services.jobs.get(job_id, caller)
    data = services.artifacts.available(job.id) if job.status == JobStatus.SUCCEEDED else []
    return ArtifactsPublic(data=data, count=len(data))


MEDIA_TYPES = {"json": "application/json", "png": "image/png", "html": "text/html; charset=utf-8"}


@router.get(
    "/{job_id}/artifacts/{name}",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, **errors(401, 404, 409)},
)
def get_artifact(services: ServicesDep, caller: ReadCaller, job_id: str, name: ArtifactName) -> FileResponse:
    """One artifact of a succeeded job.

    ``report.json`` (the training report), ``learning_curves.png``, ``student.tar.gz`` (the student
    as a Hugging Face folder), ``report_card.html`` (self-contained, opens in the browser) and
    ``report_card.json``, ``export.json`` (export and verification record) and
    ``student_onnx.tar.gz`` (the verified ONNX and int8 ONNX models with tokenizer and labels).
    """
    job = services.jobs.get(job_id, caller)
    if job.status != JobStatus.SUCCEEDED:
        raise ArtifactNotReadyError(f"job {job_id} is {job.status.value}; artifacts come with success")
    path = services.artifacts.path(job_id, name)
    media = MEDIA_TYPES.get(name.rsplit(".", 1)[-1], "application/gzip")
    inline = name.endswith((".html", ".json", ".png"))
    return FileResponse(
        path,
        media_type=media,
        filename=f"{job_id}-{name}",
        content_disposition_type="inline" if inline else "attachment",
    )
