"""Job kinds and their runners. A runner is a plain function ``(RunContext) -> report dict``.

Runners execute in a worker's child process (or a Ray task), never in the API process, so this
module imports no torch at module level. New kinds register under a key::

    @RUNNERS.register("distill")
    def run_distill_job(ctx: RunContext) -> dict: ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.registry import Registry


@dataclass(frozen=True)
class RunRequest:
    """Everything a runner needs, picklable (it crosses into a child process or a Ray task)."""

    job_id: str
    kind: str
    payload: dict[str, Any]
    out_dir: str
    resume: bool
    cache_dir: str
    threads: int | None = None
    gpu: bool = False


@dataclass(frozen=True)
class RunContext:
    """What a runner receives: the request plus the callbacks of the process it runs in.

    ``progress`` reports a JSON-safe dict (stage, epoch, step, metrics); ``should_stop`` returns
    True when the job must stop (cancellation, time budget, worker shutdown): the runner then
    saves a checkpoint and raises ``models.errors.Cancelled``.
    """

    request: RunRequest
    progress: Callable[[dict[str, Any]], None] = field(repr=False)
    should_stop: Callable[[], bool] = field(repr=False)

    @property
    def out_dir(self) -> Path:
        return Path(self.request.out_dir)


Runner = Callable[[RunContext], dict[str, Any]]
RUNNERS: Registry[Runner] = Registry("job kind")


@RUNNERS.register("distill")
def run_distill_job(ctx: RunContext) -> dict[str, Any]:
    """Distil with the engine (``models.pipeline.run_distillation``), resuming from a checkpoint."""
    import torch

    from models.config import DistillSpec
    from models.pipeline import run_distillation

    if ctx.request.threads:
        torch.set_num_threads(ctx.request.threads)
    spec = DistillSpec.model_validate(ctx.request.payload["spec"])
    report = run_distillation(
        spec,
        ctx.out_dir,
        progress=ctx.progress,
        should_stop=ctx.should_stop,
        resume=ctx.request.resume,
        cache_dir=ctx.request.cache_dir,
    )
    return deliver_if_asked(ctx, report)


def deliver_if_asked(ctx: RunContext, report: dict[str, Any], **engine: Any) -> dict[str, Any]:
    """Export the student and build the report card unless the job was submitted with ``deliver: false``.

    ``engine`` may replace the exporter and card builder (``export=``, ``report_card=``), for tests.
    """
    from app.jobs.deliver import deliver, recommendation_of

    payload = ctx.request.payload
    if not payload.get("deliver", False):  # jobs queued before delivery existed keep their behaviour
        report["deliverable"] = {"status": "skipped", "offered": ["hf"], "report_card": False}
        return report
    report["deliverable"] = deliver(
        ctx.out_dir,
        report,
        recommendation=recommendation_of(payload),
        progress=ctx.progress,
        **engine,
    )
    return report
