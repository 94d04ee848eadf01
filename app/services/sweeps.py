"""Sweeps: plan (``recommender.sweep``), then queue one ordinary job per run, resumably.

A sweep is a batch of ordinary jobs through the same queue, so it runs on whatever executes jobs
(the local worker or Ray). Runs are content-addressed by their run key; a planned run gets no new
job when its key already has a succeeded, queued or running job (of any sweep) or a sweep record
carrying the key (e.g. imported history). A failed or cancelled run is queued again as a new job.
Teachers are fine-tuned once per dataset: the engine caches them by content.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from app.domain import SYSTEM, Caller, Dataset, JobStatus, Sweep, SweepRun
from app.errors import InvalidRequestError
from app.schemas.jobs import JobCreate, ResourcesIn
from app.schemas.sweeps import SweepCreate
from app.services.datasets import DatasetService
from app.services.jobs import DEFAULT_TEACHER, JobService
from app.services.model_catalog import ModelCatalog
from app.settings import Settings
from app.store import Store
from app.store.sweeps import with_run_key

if TYPE_CHECKING:  # the recommender loads scikit-learn: imported where a sweep is planned
    from recommender.sweep import PlannedRun

log = logging.getLogger(__name__)

# A job in one of these states answers its run: it is done, or will be without another job.
ANSWERING = (JobStatus.SUCCEEDED, JobStatus.QUEUED, JobStatus.RUNNING)


class SweepService:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        catalog: ModelCatalog,
        datasets: DatasetService,
        jobs: JobService,
    ) -> None:
        self.store = store
        self.settings = settings
        self.catalog = catalog
        self.datasets = datasets
        self.jobs = jobs

    # ---- planning -----------------------------------------------------------------------------
    def plan(self, req: SweepCreate, caller: Caller = SYSTEM) -> tuple[list[PlannedRun], dict[str, Dataset]]:
        """The planned runs of ``req`` and the datasets by digest (nothing is stored).

        Raises:
            NotFoundError: An unknown dataset (or one ``caller`` cannot see).
            InvalidRequestError: A dataset or student listed twice, or nothing runnable.
        """
        from recommender.sweep import SWEEP_GRID, SweepGroup, plan_sweep

        if len(set(req.dataset_ids)) != len(req.dataset_ids):
            raise InvalidRequestError("dataset_ids lists a dataset twice")
        datasets = [self.store.datasets.get(i, owner=caller.owner) for i in req.dataset_ids]
        by_digest = {d.digest: d for d in datasets}
        if len(by_digest) != len(datasets):
            raise InvalidRequestError("two of the datasets have the same content (digest)")
        teacher = self.catalog.teacher(req.teacher or DEFAULT_TEACHER)
        students = [self.catalog.student(spec, teacher) for spec in req.students]
        groups = [
            SweepGroup(d.name, d.digest, d.task_kind, teacher.spec, spec, teacher.descriptor, desc)
            for d in datasets
            for spec, desc in students
        ]
        grid = dataclasses.replace(SWEEP_GRID, **req.grid.overrides()) if req.grid else SWEEP_GRID
        try:
            runs = plan_sweep(
                groups,
                space=req.space,
                budget=req.budget,
                seed=req.seed,
                grid=grid,
                base_config=req.base_config(),
                teacher_training=req.teacher_training,
            )
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from exc
        return runs, by_digest

    # ---- creating -----------------------------------------------------------------------------
    def create(self, req: SweepCreate, caller: Caller = SYSTEM) -> Sweep:
        """Plan ``req`` and queue a job for every run not answered yet (see the module docstring)."""
        runs, datasets = self.plan(req, caller)
        name = req.name or f"sweep of {len(runs)} runs"
        return self.submit(
            runs,
            datasets,
            name=name,
            request=req.model_dump(mode="json"),
            resources=req.resources,
            deliver=req.deliver,
            caller=caller,
        )

    def submit(
        self,
        runs: Sequence[PlannedRun],
        datasets: dict[str, Dataset],
        *,
        name: str,
        request: dict[str, Any],
        resources: ResourcesIn | None = None,
        deliver: bool = False,
        caller: Caller = SYSTEM,
    ) -> Sweep:
        """Store a sweep of planned runs (``recommender.sweep.PlannedRun``), queueing what is missing.

        Every job is validated like a ``POST /jobs`` request before it is queued. ``deliver``: export
        each run's student and build its report card (off by default: sweep runs feed the history;
        ``autodistiller export RUN_DIR`` delivers any of them later). The sweep and its jobs
        belong to ``caller``; a caller confined to its own objects reuses only its own jobs and
        records (and the imported ones), never another key's.
        """
        keys = [r.run_key for r in runs]
        if len(set(keys)) != len(keys):
            raise InvalidRequestError("the sweep lists the same run twice")
        jobs = self.store.sweeps.latest_jobs(keys, owner=caller.owner)
        recorded = self.store.sweeps.records_by_run_key(owner=caller.owner)
        sweep = self.store.sweeps.create(name, request, len(runs), owner_key_id=caller.key_id)
        queued = 0
        for run in runs:
            dataset = datasets[run.group.dataset_key]
            job = jobs.get(run.run_key)
            if job is not None and job.status in ANSWERING:
                job_id: str | None = job.id
            elif run.run_key in recorded:
                job_id = None
            else:
                job_id = self._queue(run, dataset, resources or ResourcesIn(), deliver, caller)
                queued += 1
            self.store.sweeps.add_run(
                sweep.id,
                position=run.position,
                run_key=run.run_key,
                dataset_id=dataset.id,
                student=run.group.student.describe(),
                job_id=job_id,
            )
        log.info("sweep %s: %d runs, %d new jobs", sweep.id, len(runs), queued)
        return sweep

    def _queue(
        self, run: PlannedRun, dataset: Dataset, resources: ResourcesIn, deliver: bool, caller: Caller
    ) -> str:
        req = JobCreate(
            dataset_id=dataset.id,
            kd_config=run.kd_config,
            teacher=run.group.teacher,
            student=run.group.student,
            teacher_training=run.teacher_training,
            resources=resources,
            deliver=deliver,
            measure_latency=False,  # a sweep run feeds the history, which does not use its latency
        )
        job, _ = self.jobs.submit(req, caller)
        return job.id

    # ---- reading ------------------------------------------------------------------------------
    def get(self, sweep_id: str, caller: Caller = SYSTEM) -> tuple[Sweep, list[SweepRun]]:
        owner = caller.owner
        return self.store.sweeps.get(sweep_id, owner=owner), self.store.sweeps.runs(sweep_id, owner=owner)

    def list(
        self, *, offset: int, limit: int, caller: Caller = SYSTEM
    ) -> tuple[list[tuple[Sweep, list[SweepRun]]], int]:
        owner = caller.owner
        sweeps, count = self.store.sweeps.list(offset=offset, limit=limit, owner=owner)
        return [(s, self.store.sweeps.runs(s.id, owner=owner)) for s in sweeps], count

    def records(self, sweep_id: str, caller: Caller = SYSTEM) -> list[dict[str, Any]]:
        """The sweep records of the sweep's finished runs, each with ``raw.run_key``."""
        return self.store.sweeps.records(sweep_id, owner=caller.owner)

    def job_record(self, job_id: str) -> dict[str, Any] | None:
        """The sweep record a job appended, with ``raw.run_key`` when the job belongs to a sweep."""
        rows, _ = self.store.sweep_records.list(job_id=job_id, limit=1)
        if not rows:
            return None
        key = self.store.sweeps.job_run_key(job_id)
        return with_run_key(rows[0].record, key) if key else dict(rows[0].record)

    # ---- history and datasets -----------------------------------------------------------------
    def import_records(self, records: Sequence[dict[str, Any]]) -> int:
        """Append records (dicts with ``raw.run_key``) whose run key no stored record has yet.

        Returns:
            How many were appended.
        """
        known = self.store.sweeps.records_by_run_key()
        new = []
        for record in records:
            key = (record.get("raw") or {}).get("run_key")
            if not key:
                raise InvalidRequestError("an imported sweep record needs raw.run_key to answer sweep runs")
            if key not in known:
                known[key] = record
                new.append(record)
        return self.store.sweep_records.append_imported(new) if new else 0

    def builtin_dataset(self, name: str) -> Dataset:
        """The registered built-in dataset ``name`` (e.g. ``rotten_tomatoes@500``), registering it
        (and computing its meta-features) the first time."""
        offset = 0
        while True:
            page, count = self.store.datasets.list(offset=offset, limit=200)
            for d in page:
                if d.builtin_name == name:
                    return d
            offset += len(page)
            if not page or offset >= count:
                return self.datasets.register_builtin(name)
