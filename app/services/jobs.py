"""Jobs: submission (validated before the job exists), reads, cancellation, events and logs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from app.domain import SYSTEM, Caller, Dataset, Job, JobEvent, JobStatus, Resources
from app.errors import IdempotencyConflictError, InvalidRequestError
from app.schemas.jobs import JobCreate
from app.services.artifacts import ArtifactStore
from app.services.datasets import DatasetService
from app.services.model_catalog import ModelCatalog, confine_config_paths
from app.services.recommend import DEFAULT_STUDENT
from app.settings import Settings
from app.store import Store
from models.config import DistillSpec, KDConfig, StudentSpec, check_compatible
from models.errors import ComponentUnavailableError

DEFAULT_TEACHER = "minilm-l6"


def request_hash(req: JobCreate, *, default_time_budget_s: int) -> str:
    """A digest of the normalised request without its idempotency key (to detect a key reused
    for another request).

    Normalised: validated, every default filled in (the schema's, and the server's teacher,
    student and time budget), keys sorted. Two bodies that ask for the same job, one spelling out
    the defaults the other leaves out, have the same digest.
    """
    body = req.model_dump(mode="json", exclude={"idempotency_key"})
    if req.recommendation_id is None:  # with a recommendation, teacher and student come from it
        body["teacher"] = req.teacher or DEFAULT_TEACHER
        body["student"] = (req.student or DEFAULT_STUDENT).model_dump(mode="json")
    body["resources"]["time_budget_s"] = req.resources.time_budget_s or default_time_budget_s
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


class JobService:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        catalog: ModelCatalog,
        datasets: DatasetService,
        artifacts: ArtifactStore,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.catalog = catalog
        self.datasets = datasets
        self.artifacts = artifacts
        self.wake = wake

    def _pipeline(
        self, req: JobCreate, caller: Caller
    ) -> tuple[KDConfig, str, StudentSpec, dict[str, Any] | None]:
        """The KD config, teacher and student, from the request or its recommendation (and what it said)."""
        if req.recommendation_id is None:
            if req.kd_config is None:
                raise InvalidRequestError("give kd_config or recommendation_id and rank")
            return req.kd_config, req.teacher or DEFAULT_TEACHER, req.student or DEFAULT_STUDENT, None
        rec = self.store.recommendations.get(req.recommendation_id, owner=caller.owner)
        if rec.dataset_id is not None and rec.dataset_id != req.dataset_id:
            raise InvalidRequestError(
                f"recommendation {rec.id} was made for dataset {rec.dataset_id}, not {req.dataset_id}"
            )
        if not 1 <= (req.rank or 0) <= len(rec.items):
            raise InvalidRequestError(
                f"rank must be between 1 and {len(rec.items)} for recommendation {rec.id}"
            )
        item = rec.items[(req.rank or 1) - 1]
        teacher = rec.teacher["spec"]
        student = StudentSpec.model_validate(item["student"])
        if req.teacher is not None and req.teacher != teacher:
            raise InvalidRequestError("the teacher comes from the recommendation; leave teacher out")
        if req.student is not None and req.student != student:
            raise InvalidRequestError("the student comes from the recommendation; leave student out")
        kd_config = KDConfig.from_dict(item["kd_config"])
        if req.training is not None:
            kd_config = kd_config.model_copy(update={"training": req.training})
        source = {
            "recommendation_id": rec.id,
            "rank": req.rank,
            "meta_learner_version": rec.meta_learner_version,
            "predicted_ratio": item.get("predicted_ratio"),
            "interval": item.get("interval"),
            "explanation": item.get("explanation"),
        }
        return kd_config, teacher, student, source

    def _spec(
        self, req: JobCreate, dataset: Dataset, caller: Caller
    ) -> tuple[DistillSpec, dict[str, Any] | None]:
        kd_config, teacher_name, student, source = self._pipeline(req, caller)
        teacher = self.catalog.teacher(teacher_name)
        student, s_desc = self.catalog.student(student, teacher)
        kd_config = KDConfig.from_dict(
            confine_config_paths(kd_config.model_dump(mode="json"), self.settings.resolved_model_roots)
        )
        check_compatible(kd_config, task_kind=dataset.task_kind, teacher=teacher.descriptor, student=s_desc)
        self._check_available(kd_config)
        data_source, options = self.datasets.loader_source(dataset)
        spec = DistillSpec(
            dataset=data_source,
            teacher=teacher.spec,
            student=student,
            kd_config=kd_config,
            teacher_training=req.teacher_training,
            train_no_kd_baseline=req.train_no_kd_baseline,
            measure_latency=req.measure_latency,
            dataset_options=options,
        )
        return spec, source

    @staticmethod
    def _check_available(kd_config: KDConfig) -> None:
        from models.availability import component_availability, unavailable_reasons

        aug = kd_config.augmentation
        report = component_availability(mlm_model=aug.mlm_model, translation_models=aug.translation_models)
        reasons = unavailable_reasons(kd_config, report)
        if reasons:
            raise ComponentUnavailableError("the pipeline cannot run on this server: " + "; ".join(reasons))

    def submit(
        self, req: JobCreate, caller: Caller = SYSTEM, *, origin: dict[str, Any] | None = None
    ) -> tuple[Job, bool]:
        """Validate and queue a distillation job; an idempotent replay returns the first job.

        The job belongs to ``caller``'s key; its dataset and recommendation must be ones the
        caller can see (another key's are "not found"). ``origin`` (e.g. the search and trial a
        job trains) joins what the job records about where its config came from (report card).

        Returns:
            ``(job, created)``.

        Raises:
            IdempotencyConflictError: The key was used for a different request.
            NotFoundError, InvalidRequestError, ConfigError, PathNotAllowedError: Bad input.
        """
        digest = request_hash(req, default_time_budget_s=self.settings.limits.default_time_budget_s)
        if req.idempotency_key is not None:
            existing = self.store.jobs.by_idempotency_key(req.idempotency_key)
            if existing is not None:
                return self._replay(existing, digest, caller), False
        dataset = self.store.datasets.get(req.dataset_id, owner=caller.owner)
        spec, recommendation = self._spec(req, dataset, caller)
        budget = req.resources.time_budget_s or self.settings.limits.default_time_budget_s
        if budget > self.settings.limits.max_time_budget_s:
            raise InvalidRequestError(
                f"time_budget_s must be at most {self.settings.limits.max_time_budget_s}"
            )
        job, created = self.store.jobs.create(
            kind="distill",
            payload={
                "spec": spec.model_dump(mode="json"),
                "teacher": req.teacher or spec.teacher,
                "dataset_digest": dataset.digest,
                "deliver": req.deliver,
                "recommendation": {**(recommendation or {}), **origin} if origin else recommendation,
            },
            resources=Resources(gpu=req.resources.gpu, time_budget_s=budget),
            max_attempts=self.settings.worker.max_attempts,
            dataset_id=dataset.id,
            recommendation_id=req.recommendation_id,
            rank=req.rank,
            idempotency_key=req.idempotency_key,
            request_hash=digest,
            owner_key_id=caller.key_id,
        )
        if not created:
            return self._replay(job, digest, caller), False
        self.wake()
        return job, True

    @staticmethod
    def _replay(job: Job, digest: str, caller: Caller) -> Job:
        if not caller.owns(job.owner_key_id):  # another key's job: say nothing about it
            raise IdempotencyConflictError(
                f"idempotency key {job.idempotency_key!r} is already in use; choose another"
            )
        if job.request_hash != digest:
            raise IdempotencyConflictError(
                f"idempotency key {job.idempotency_key!r} was already used for a different request "
                f"(job {job.id})"
            )
        return job

    def cancel(self, job_id: str, caller: Caller = SYSTEM) -> Job:
        self.store.jobs.get(job_id, owner=caller.owner)  # another key's job is "not found"
        job = self.store.jobs.request_cancel(job_id)
        self.wake()
        return job

    def list(
        self,
        *,
        status: JobStatus | None,
        dataset_id: str | None,
        offset: int,
        limit: int,
        caller: Caller = SYSTEM,
    ) -> tuple[list[Job], int]:
        return self.store.jobs.list(
            status=status, dataset_id=dataset_id, owner=caller.owner, offset=offset, limit=limit
        )

    def get(self, job_id: str, caller: Caller = SYSTEM) -> Job:
        return self.store.jobs.get(job_id, owner=caller.owner)

    def events(self, job_id: str, after_id: int = 0, limit: int = 500) -> list[JobEvent]:
        return self.store.jobs.events(job_id, after_id=after_id, limit=limit)
