"""The one settings object of the service (pydantic-settings, env prefix ``AUTODISTILLER_``).

Nothing else in ``app`` reads ``os.environ``: components receive a :class:`Settings` instance.
Nested groups use ``__`` in env names, e.g. ``AUTODISTILLER_LIMITS__MAX_UPLOAD_BYTES=1000000``.

Defaults (the embedded mode of ``autodistiller serve``):

- ``data_dir``: ``~/.local/share/autodistiller`` (the XDG data location of the user running the
  service; the Docker images set ``/data``). It holds the SQLite file, uploaded datasets, job
  artifacts and meta-learner versions. A per-user location, rather than ``./autodistiller-data``,
  means the service finds the same state whatever directory it is started from.
- ``database_url``: ``sqlite:///<data_dir>/autodistiller.db`` (WAL mode); Postgres via a
  ``postgresql+psycopg://`` URL.
- ``model_roots``: ``[<data_dir>/models]``; teacher and student paths must lie inside one of them.
"""

from __future__ import annotations

import ipaddress
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Executor = Literal["local", "ray", "inline"]


def default_data_dir() -> Path:
    """The default data directory (see the module docstring for why a per-user path)."""
    return Path.home() / ".local" / "share" / "autodistiller"


class Limits(BaseModel):
    """Request limits that protect the service from oversized input."""

    max_upload_bytes: int = Field(50 * 1024 * 1024, ge=1024, description="largest dataset upload")
    max_rows: int = Field(500_000, ge=10, description="most rows in one dataset (train + dev)")
    max_page_size: int = Field(200, ge=1)
    default_time_budget_s: int = Field(6 * 3600, ge=1, description="time budget of a job that names none")
    max_time_budget_s: int = Field(7 * 24 * 3600, ge=1)
    max_recommendations: int = Field(50, ge=1, description="largest k of POST /recommend")


class WorkerSettings(BaseModel):
    """How executors claim, supervise and retry jobs."""

    lease_s: float = Field(30.0, gt=0, description="a running job's lease; renewed every heartbeat")
    heartbeat_s: float = Field(2.0, gt=0)
    poll_s: float = Field(1.0, gt=0, description="idle wait between queue polls (a submission wakes it)")
    max_attempts: int = Field(3, ge=1, description="attempts before a job whose worker died is failed")
    stop_grace_s: float = Field(20.0, ge=0, description="wait after a stop request before killing")
    slots: int = Field(1, ge=1, description="jobs run at once by one worker")
    gpu: bool | None = Field(None, description="worker has a GPU; None: detect via nvidia-smi")
    train_threads: int | None = Field(None, ge=1, description="torch threads in a training process")
    progress_event_interval_s: float = Field(
        1.0,
        ge=0,
        description="min gap between stored progress events; a new stage and the last one are always stored",
    )


class MetaLearnerSettings(BaseModel):
    """Where the meta-learner comes from and when it is refit (see app.services.meta_learner)."""

    artifact: Path | None = Field(None, description="a meta-learner file to use instead of the shipped one")
    use_shipped: bool = Field(True, description="register the shipped artifact when the database has none")
    auto_refit_every: int = Field(
        10, ge=0, description="refit after this many new sweep records (0 disables the automatic refit)"
    )
    min_records: int = Field(2, ge=2, description="fewest usable sweep records a fit needs")
    embeddings: Literal["subprocess", "off"] = Field(
        "subprocess", description="dataset embedding meta-features: in a helper process, or left missing"
    )


class Settings(BaseSettings):
    """Service configuration, validated once at startup."""

    model_config = SettingsConfigDict(
        env_prefix="AUTODISTILLER_", env_nested_delimiter="__", extra="ignore", frozen=True
    )

    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in data_dir")
    model_roots: tuple[Path, ...] = Field(default=(), description="allowed folders for model paths")
    executor: Executor = "local"
    ray_address: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    auth: bool = Field(
        True,
        description="require an API key (read, write or admin scope) on every route but "
        "/health, /metrics and the docs",
    )
    public_reads: bool = Field(
        False,
        description="with auth on, let GET requests through without a key and show them every key's objects "
        "(logged loudly at start-up); writes still need a key",
    )
    embedded_worker: bool = Field(True, description="`serve` also runs the executor")
    auto_migrate: bool = Field(True, description="apply database migrations at startup")
    log_level: str = "info"
    api_workers: int = Field(
        1,
        ge=1,
        le=64,
        description="API processes of `serve` (one per core serves more requests; with more than one, "
        "the job executor runs in a process of its own)",
    )
    api_threads: int = Field(
        8, ge=1, le=256, description="threads serving blocking route code (more only thrash on few cores)"
    )
    compute_threads: int = Field(
        1, ge=1, description="OpenMP/BLAS threads for scikit-learn and numpy in the service processes"
    )
    limits: Limits = Limits()
    worker: WorkerSettings = WorkerSettings()
    meta_learner: MetaLearnerSettings = MetaLearnerSettings()

    @field_validator("data_dir", mode="after")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if not self.auth and not is_loopback(self.host):
            raise ValueError(
                f"auth can only be disabled on a loopback host (127.0.0.1, ::1, localhost), not {self.host!r}"
            )
        if self.executor == "ray" and not self.ray_address:
            raise ValueError("executor='ray' needs ray_address (e.g. 127.0.0.1:6379)")
        return self

    @cached_property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'autodistiller.db'}"

    @cached_property
    def resolved_model_roots(self) -> tuple[Path, ...]:
        roots = self.model_roots or (self.data_dir / "models",)
        return tuple(Path(r).expanduser().resolve() for r in roots)

    @property
    def datasets_dir(self) -> Path:
        return self.data_dir / "datasets"

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir / "artifacts"

    @property
    def meta_learners_dir(self) -> Path:
        return self.data_dir / "meta_learners"


def is_loopback(host: str) -> bool:
    """True for loopback addresses and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
