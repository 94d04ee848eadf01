"""The dispatcher: claims queued jobs, launches them on a backend, supervises and finishes them.

One loop, one thread, any backend. Each tick it

1. requeues jobs whose lease expired (their worker died), within ``max_attempts``;
2. supervises running jobs: stores progress, renews the lease (heartbeat), forwards a
   cancellation request, enforces the time budget (graceful stop, then kill after
   ``stop_grace_s``), and records the outcome;
3. claims new jobs while it has free slots.

A succeeded job's sweep record is appended in the same transaction that marks it succeeded,
so a retried or duplicated finish can never append twice; that transaction is conditional on no
cancel request, so a job asked to cancel ends ``cancelled`` (and records nothing) even when its
runner finished before it saw the request.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from app.domain import Job, JobStatus, utcnow
from app.errors import AppError, IllegalTransitionError, NotFoundError
from app.jobs.execution import Backend, Execution
from app.jobs.runners import RUNNERS, Runner, RunRequest
from app.services.records import sweep_record_columns
from app.settings import Settings
from app.store import Store
from models.registry import Registry

log = logging.getLogger(__name__)

STOP_CANCELLED = "cancelled"
STOP_BUDGET = "time_budget_exceeded"
STOP_SHUTDOWN = "shutdown"


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class _Active:
    job: Job
    execution: Execution
    last_heartbeat: float
    last_progress_event: float = 0.0
    last_stage: Any = None
    unsent_event: dict[str, Any] | None = None
    stop_reason: str | None = None
    stop_requested_at: float | None = None
    outcome: tuple[str, Any] | None = None


class Dispatcher:
    """Runs jobs from the database on ``backend``.

    Args:
        store: The service's store.
        settings: Worker settings (lease, heartbeat, slots, grace, ...).
        backend: Where jobs run.
        runners: Job kind -> runner (the registry of kinds this worker serves).
        on_succeeded: Called with each job that succeeded (e.g. the automatic refit policy).
    """

    def __init__(
        self,
        store: Store,
        settings: Settings,
        backend: Backend,
        *,
        runners: Registry[Runner] = RUNNERS,
        on_succeeded: Callable[[Job], None] | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.backend = backend
        self.runners = runners
        self.on_succeeded = on_succeeded
        self.worker_id = worker_id or new_worker_id()
        self.active: dict[str, _Active] = {}
        self._wake = threading.Event()
        self._last_reap = float("-inf")
        self._cfg = settings.worker

    # ---- loop ---------------------------------------------------------------------------------
    def wake(self) -> None:
        """Poll the queue now (a job was submitted or cancelled in this process)."""
        self._wake.set()

    def run(self, stop: threading.Event) -> None:
        """Tick until ``stop`` is set, then stop running jobs gracefully (they are requeued)."""
        log.info(
            "worker %s serving %s on the %s backend", self.worker_id, self.runners.keys(), self.backend.name
        )
        try:
            while not stop.is_set():
                try:
                    self.tick()
                except Exception:  # a database hiccup must not kill the worker: retry next tick
                    log.exception("dispatcher tick failed")
                self._wake.wait(0.2 if self.active else self._cfg.poll_s)
                self._wake.clear()
        finally:
            self.shutdown()

    def tick(self) -> None:
        now = time.monotonic()
        if now - self._last_reap >= min(self._cfg.lease_s / 2, 10.0):
            self._last_reap = now
            self.reap()
        for active in list(self.active.values()):
            self._supervise(active)
        while len(self.active) < self._cfg.slots:
            job = self.store.jobs.claim(
                self.worker_id,
                lease_s=self._cfg.lease_s,
                gpu_ok=self.backend.gpu_ok,
                kinds=self.runners.keys(),
            )
            if job is None:
                break
            self._launch(job)

    def run_until_idle(self, timeout: float = 120.0) -> None:
        """Tick until nothing runs and nothing claimable is queued (tests and ``worker --once``)."""
        deadline = time.monotonic() + timeout
        while True:
            self.tick()
            if not self.active:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"jobs still running after {timeout} s: {sorted(self.active)}")
            time.sleep(0.05)

    def reap(self) -> None:
        """Requeue, fail or cancel running jobs whose lease expired."""
        for job in self.store.jobs.expired():
            if job.id in self.active:
                continue  # ours and alive: the next heartbeat renews it
            released = self.store.jobs.release_expired(job)
            if released is not None:
                log.warning(
                    "job %s: lease of %s expired; now %s", job.id, job.worker_id, released.status.value
                )

    # ---- one job ------------------------------------------------------------------------------
    def _job_dir(self, job_id: str) -> Path:
        path = self.settings.artifacts_dir / "jobs" / job_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _launch(self, job: Job) -> None:
        out_dir = self._job_dir(job.id)
        request = RunRequest(
            job_id=job.id,
            kind=job.kind,
            payload=job.payload,
            out_dir=str(out_dir),
            resume=job.attempts > 1,
            cache_dir=str(self.settings.data_dir / "cache"),
            threads=self._cfg.train_threads,
            gpu=job.resources.gpu,
        )
        try:
            execution = self.backend.launch(self.runners.get(job.kind), request, str(out_dir / "job.log"))
        except Exception as exc:
            code = exc.code if isinstance(exc, AppError) else "executor_unavailable"
            log.exception("job %s could not be launched", job.id)
            self._transition(
                job, JobStatus.FAILED, error_code=code, error_message=f"launch failed: {exc}"[:2000]
            )
            return
        self.active[job.id] = _Active(job=job, execution=execution, last_heartbeat=time.monotonic())
        self.store.jobs.add_event(
            job.id,
            "log",
            {
                "message": f"attempt {job.attempts} started on {self.worker_id} ({self.backend.name})"
                + (", resuming from the last checkpoint" if request.resume else "")
            },
        )

    def _supervise(self, a: _Active) -> None:
        self._take(a, a.execution.poll())
        if a.outcome is None and not a.execution.finished():
            self._watch(a)
            return
        if a.outcome is None:  # ended: collect what it sent between the last poll and its end
            self._take(a, a.execution.poll())
        self._flush_progress_event(a)
        self._finish(a)

    def _take(self, a: _Active, messages: list[tuple[str, Any]]) -> None:
        """Stores progress and log messages in the order sent; the final outcome is kept on ``a``."""
        for kind, data in messages:
            if kind == "progress":
                self._progress(a, data)
            elif kind == "log":
                self.store.jobs.add_event(a.job.id, "log", data)
            else:
                a.outcome = (kind, data)

    def _progress(self, a: _Active, data: dict[str, Any]) -> None:
        """Every progress message updates the job; events are throttled, except at a change of stage."""
        now = time.monotonic()
        stage_changed = data.get("stage") != a.last_stage
        store_event = stage_changed or now - a.last_progress_event >= self._cfg.progress_event_interval_s
        if store_event:
            a.last_progress_event = now
        a.last_stage = data.get("stage")
        a.unsent_event = None if store_event else data
        self.store.jobs.set_progress(a.job.id, data, store_event=store_event)

    def _flush_progress_event(self, a: _Active) -> None:
        """The last progress a job sent is always an event, even when throttling held it back."""
        if a.unsent_event is not None:
            self.store.jobs.add_event(a.job.id, "progress", a.unsent_event)
            a.unsent_event = None

    def _watch(self, a: _Active) -> None:
        now = time.monotonic()
        if now - a.last_heartbeat >= self._cfg.heartbeat_s:
            if not self.store.jobs.heartbeat(a.job.id, self.worker_id, lease_s=self._cfg.lease_s):
                # another actor took the job (its lease had expired): this copy must not go on
                log.error("job %s: lease lost; killing this copy", a.job.id)
                a.execution.kill()
                a.execution.close()
                del self.active[a.job.id]
                return
            a.last_heartbeat = now
            a.job = self.store.jobs.get(a.job.id)
            if a.job.cancel_requested and a.stop_reason is None:
                self._stop(a, STOP_CANCELLED)
        started = a.job.started_at or utcnow()
        if a.stop_reason is None and utcnow() - started > timedelta(seconds=a.job.resources.time_budget_s):
            self._stop(a, STOP_BUDGET)
        if a.stop_requested_at is not None and now - a.stop_requested_at > self._cfg.stop_grace_s:
            a.execution.kill()

    def _stop(self, a: _Active, reason: str) -> None:
        log.info("job %s: stopping (%s)", a.job.id, reason)
        a.stop_reason = reason
        a.stop_requested_at = time.monotonic()
        a.execution.request_stop()
        self.store.jobs.add_event(a.job.id, "log", {"message": f"stop requested: {reason}"})

    def _finish(self, a: _Active) -> None:
        job = a.job
        kind, data = a.outcome or ("crashed", a.execution.exit_info())
        try:
            if kind == "result":
                self._succeed(job, data)  # ends cancelled if a cancel was requested meanwhile
            elif self._cancel_requested(job):  # cancel is final, whatever else stopped the run
                self._transition(job, JobStatus.CANCELLED, event={"reason": "cancel requested"})
            elif kind == "error":
                self._transition(
                    job, JobStatus.FAILED, error_code=data["code"], error_message=data["message"]
                )
            elif a.stop_reason == STOP_SHUTDOWN:
                self._transition(job, JobStatus.QUEUED, event={"reason": "worker shut down; resumes later"})
            elif a.stop_reason == STOP_CANCELLED:
                self._transition(job, JobStatus.CANCELLED)
            elif a.stop_reason == STOP_BUDGET:
                self._transition(
                    job,
                    JobStatus.FAILED,
                    error_code="time_budget_exceeded",
                    error_message=f"stopped after its time budget of {job.resources.time_budget_s} s",
                )
            elif kind == "cancelled":  # the runner stopped without being asked: treat as cancelled
                self._transition(job, JobStatus.CANCELLED)
            else:
                self._transition(job, JobStatus.FAILED, error_code="runner_failed", error_message=str(data))
        finally:
            a.execution.close()
            self.active.pop(job.id, None)

    def _cancel_requested(self, job: Job) -> bool:
        """Whether a cancel was requested (read now: the flag may have landed after the last heartbeat)."""
        try:
            return self.store.jobs.get(job.id).cancel_requested
        except NotFoundError:
            return False

    def _succeed(self, job: Job, report: dict[str, Any]) -> None:
        try:
            dataset = (
                self.store.datasets.get(job.dataset_id, include_deleted=True) if job.dataset_id else None
            )
            record = sweep_record_columns(job, report, dataset)
        except (ValueError, TypeError, KeyError, NotFoundError) as exc:
            self._transition(
                job,
                JobStatus.FAILED,
                error_code="runner_failed",
                error_message=f"the run finished but its report cannot form a sweep record: {exc}",
            )
            return
        try:
            done = self.store.jobs.succeed(
                job.id, worker_id=self.worker_id, result=report, sweep_record=record
            )
        except IllegalTransitionError as exc:
            log.warning("job %s: %s (someone else changed it)", job.id, exc.message)
            return
        if done.status == JobStatus.CANCELLED:
            log.info("job %s: finished after a cancel request; cancelled, result discarded", job.id)
            return
        if self.on_succeeded is not None:
            try:
                self.on_succeeded(done)
            except Exception:
                log.exception("post-success hook failed for job %s", job.id)

    def _transition(self, job: Job, target: JobStatus, **values: Any) -> Job | None:
        try:
            return self.store.jobs.transition(job.id, target, worker_id=self.worker_id, **values)
        except IllegalTransitionError as exc:
            log.warning("job %s: %s (someone else changed it)", job.id, exc.message)
            return None

    # ---- shutdown -----------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop every running job gracefully; what is still running after the grace is killed.

        Stopped jobs go back to the queue, to resume from their checkpoint on a later claim.
        """
        if not self.active:
            self.backend.close()
            return
        for a in self.active.values():
            if a.stop_reason is None:
                self._stop(a, STOP_SHUTDOWN)
        deadline = time.monotonic() + self._cfg.stop_grace_s
        while self.active and time.monotonic() < deadline:
            for a in list(self.active.values()):
                self._supervise(a)
            time.sleep(0.1)
        for a in list(self.active.values()):
            a.execution.kill()
            a.stop_reason = STOP_SHUTDOWN
            a.outcome = None
            self._finish(a)
        self.backend.close()
