"""/health and /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel

from app.deps import ServicesDep
from app.metrics import CONTENT_TYPE

router = APIRouter(tags=["system"])


class HealthPublic(BaseModel):
    status: str
    version: str
    database: str
    executor: str
    executor_running: bool
    auth: bool
    public_reads: bool


@router.get("/health")
def health(services: ServicesDep) -> HealthPublic:
    """Liveness and the database connection (public: no key needed)."""
    import models

    try:
        services.store.ping()
        database = "ok"
    except Exception as exc:  # report, do not raise: a health probe must answer
        database = f"error: {type(exc).__name__}"
    executor = services.executor
    return HealthPublic(
        status="ok" if database == "ok" else "degraded",
        version=models.__version__,
        database=database,
        executor=services.settings.executor,
        executor_running=executor is not None and executor.alive(),
        auth=services.settings.auth,
        public_reads=services.settings.auth and services.settings.public_reads,
    )


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(request: Request) -> Response:
    """Prometheus exposition format (public: aggregate counts only, for scrapers)."""
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE)
