"""The FastAPI application factory.

``create_app(settings)`` builds the app; the services (database, executor) start in its
lifespan. Swagger UI (/docs) and ReDoc (/redoc) are served from assets bundled with
``fastapi-offline``: no CDN, so the docs work on a machine without network access.
Run with ``autodistiller serve`` or ``uvicorn --factory app.main:create_app``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from app.api import datasets, jobs, meta_learner, recommend, searches, sweeps, system
from app.api.auth import AuthMiddleware
from app.api.handlers import BodyLimitMiddleware, install_error_handler
from app.metrics import Metrics, MetricsMiddleware
from app.services.container import Services
from app.settings import Settings

log = logging.getLogger("app")

DESCRIPTION = """
Distil NLP transformers with knowledge distillation, guided by a meta-learner that recommends the
KD pipeline for your dataset.

1. `POST /datasets` — upload a table (or register a built-in dataset).
2. `POST /recommend` — ranked pipelines with predicted distillation ratio and an explanation.
3. `POST /jobs` — distil (with a pipeline, or a recommendation id and rank); follow
   `GET /jobs/{id}/events`, then download `GET /jobs/{id}/artifacts/student.tar.gz`.
4. `POST /sweeps` — a batch of jobs over a pipeline space (resumable); `GET /sweeps/{id}` follows it.
5. `POST /searches` — a budgeted search (portfolio first, successive halving over epochs); follow
   `GET /searches/{id}/events`; the best student is delivered like any job.

Every route but `/health`, `/metrics` and these docs needs an API key (`X-API-Key` or
`Authorization: Bearer`), created with `autodistiller keys create NAME [--scope read|write|admin]`.
A key sees and changes only what it created (built-in datasets: every key reads them); an admin
key sees everything. Errors are JSON: `{"error": {"code", "message", "details"}}`.
"""


def _warn_no_auth(settings: Settings) -> None:
    banner = "!" * 78
    log.warning(
        "\n%s\n!! AUTH DISABLED: every write route is open to anyone who can reach %s:%d\n"
        "!! (allowed only on a loopback address). Do not expose this server.\n%s",
        banner,
        settings.host,
        settings.port,
        banner,
    )


def _warn_public_reads(settings: Settings) -> None:
    banner = "!" * 78
    log.warning(
        "\n%s\n!! PUBLIC READS: every GET route (datasets, jobs, logs, trained models, sweep records)\n"
        "!! is open WITHOUT a key to anyone who can reach %s:%d, and shows every key's objects.\n"
        "!! Writes still need a key. Turn this off unless every reader may see everything.\n%s",
        banner,
        settings.host,
        settings.port,
        banner,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API for ``settings`` (default: read from the environment)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # route code that blocks (SQL, the meta-learner) runs in this many threads
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.api_threads
        services = Services.create(settings)
        app.state.services = services
        try:
            services.meta_learners.bootstrap()
            if not settings.auth:
                _warn_no_auth(settings)
            elif settings.public_reads:
                _warn_public_reads(settings)
            if settings.embedded_worker:
                executor = services.build_executor()
                services.attach_executor(executor)
                executor.start()
                services.start_search_driver()
            yield
        finally:
            services.close()

    import models

    app = FastAPIOffline(
        title="AutoDistiller",
        version=models.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.services = None
    app.state.metrics = Metrics(lambda: app.state.services)
    install_error_handler(app)
    # the last added runs first: metrics count every answer, the key is checked before the body
    # limit (an anonymous caller learns nothing from a 413) and before the body is parsed
    app.add_middleware(BodyLimitMiddleware, limit=settings.limits.max_upload_bytes + (1 << 20))
    app.add_middleware(AuthMiddleware, services=lambda: app.state.services)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    for module in (datasets, recommend, jobs, sweeps, searches, meta_learner, system):
        app.include_router(module.router)
    return app


def app_from_env() -> FastAPI:
    """The app for ``Settings()`` read from the environment: the factory ``serve --workers N`` gives
    each uvicorn worker process (``uvicorn app.main:app_from_env --factory`` works too)."""
    return create_app(Settings())
