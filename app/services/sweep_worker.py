"""Run a sweep's jobs with a worker in this process (``autodistiller sweep`` and ``kb build``).

The worker is the service's own :class:`~app.jobs.dispatcher.Dispatcher` over the configured
backend (``local``: a child process per job; ``inline``: a thread), so a sweep run here behaves
exactly like one served by ``autodistiller worker``: leases, checkpoints and resumption included.
It serves the whole queue of the store, so jobs queued by others in the same store run too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from app.domain import Job, JobStatus
from app.jobs.dispatcher import Dispatcher
from app.jobs.executor import make_backend
from app.jobs.runners import RUNNERS, Runner
from app.services.container import Services
from models.registry import Registry

log = logging.getLogger(__name__)
_STATUS_EVERY_S = 1.0  # how often the sweep's run states are re-read from the database


@dataclass
class LocalRunSummary:
    """What one local run of a sweep did."""

    finished: dict[str, int] = field(default_factory=dict)  # job status -> jobs finished here
    complete: bool = False  # no run of the sweep is queued or running any more
    stopped_early: str | None = None  # why the loop ended before the sweep was complete

    @property
    def n_finished(self) -> int:
        return sum(self.finished.values())


def _pending(services: Services, sweep_id: str) -> tuple[int, int]:
    runs = services.store.sweeps.runs(sweep_id)
    return (
        sum(r.status == JobStatus.QUEUED.value for r in runs),
        sum(r.status == JobStatus.RUNNING.value for r in runs),
    )


def run_sweep_locally(
    services: Services,
    sweep_id: str,
    *,
    on_succeeded: Callable[[Job], None] | None = None,
    on_finished: Callable[[Job], None] | None = None,
    max_runs: int | None = None,
    stop: threading.Event | None = None,
    runners: Registry[Runner] = RUNNERS,
    tick_s: float = 0.2,
) -> LocalRunSummary:
    """Work the queue until the sweep has no queued or running run (or ``max_runs`` finished).

    A job left ``running`` by a worker that died (e.g. an interrupted earlier session) is requeued
    once its lease expires and resumes from its checkpoint. On return or interruption the running
    job is stopped gracefully and goes back to the queue.

    Args:
        services: The service objects over the sweep's store.
        sweep_id: The sweep.
        on_succeeded: Called with each job that succeeded (its sweep record is stored by then).
        on_finished: Called with each job that finished here, whatever the outcome.
        max_runs: Stop after this many jobs finished here.
        stop: Set it to stop early.
        runners: Job kind -> runner.
        tick_s: Pause between dispatcher ticks.
    """
    summary = LocalRunSummary()
    dispatcher = Dispatcher(
        services.store,
        services.settings,
        make_backend(services.settings),
        runners=runners,
        on_succeeded=on_succeeded,
    )
    last_check = float("-inf")
    try:
        while True:
            before = set(dispatcher.active)
            dispatcher.tick()
            for job_id in before - set(dispatcher.active):
                job = services.store.jobs.get(job_id)
                summary.finished[job.status.value] = summary.finished.get(job.status.value, 0) + 1
                if on_finished is not None:
                    on_finished(job)
            if max_runs is not None and summary.n_finished >= max_runs:
                summary.stopped_early = f"max_runs={max_runs} reached"
                break
            if stop is not None and stop.is_set():
                summary.stopped_early = "stop requested"
                break
            now = time.monotonic()
            if now - last_check >= _STATUS_EVERY_S or not dispatcher.active:
                last_check = now
                queued, running = _pending(services, sweep_id)
                if queued + running == 0:
                    summary.complete = True
                    break
                if queued and not running and not dispatcher.active:
                    # nothing runs and this worker could claim nothing: e.g. GPU jobs on a CPU machine
                    summary.stopped_early = f"{queued} queued run(s) that this worker cannot claim"
                    break
            time.sleep(tick_s)
    finally:
        dispatcher.shutdown()
    return summary
