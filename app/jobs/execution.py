"""Running a runner and reporting its outcome the same way in every backend.

Messages flow from a running job to its dispatcher as ``(kind, data)`` tuples:
``("progress", dict)``, ``("log", {"message": str})`` and one final outcome, which is
``("result", report)``, ``("error", {"code", "message"})`` or ``("cancelled", None)``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, Protocol

from app.jobs.runners import RunContext, Runner, RunRequest
from models.errors import AutoDistillerError, Cancelled

log = logging.getLogger(__name__)

Message = tuple[str, Any]
OUTCOMES = ("result", "error", "cancelled")


def jsonable(data: Any) -> Any:
    """A JSON-safe deep copy (numpy numbers, paths and the like become plain values or strings)."""
    return json.loads(json.dumps(data, default=_plain))


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        try:
            return item()
        except (TypeError, ValueError):
            pass
    return str(value)


def execute(
    runner: Runner,
    request: RunRequest,
    progress: Callable[[dict[str, Any]], None],
    should_stop: Callable[[], bool],
) -> Message:
    """Run ``runner`` and turn its return or exception into the final outcome message."""
    ctx = RunContext(request=request, progress=progress, should_stop=should_stop)
    try:
        return ("result", jsonable(runner(ctx)))
    except Cancelled:
        return ("cancelled", None)
    except AutoDistillerError as exc:
        log.error("job %s failed: [%s] %s", request.job_id, exc.code, exc.message)
        return ("error", {"code": exc.code, "message": exc.message})
    except Exception as exc:  # a bug or a crash inside the runner: report it, with the traceback in the log
        log.exception("job %s crashed", request.job_id)
        return ("error", {"code": "runner_failed", "message": f"{type(exc).__name__}: {exc}"[:2000]})


class Execution(Protocol):
    """A launched job, as its dispatcher supervises it."""

    def poll(self) -> list[Message]:
        """Messages received since the last poll."""

    def finished(self) -> bool:
        """Whether the job's process/thread/task has ended (its last messages may still be unpolled)."""

    def exit_info(self) -> str:
        """How it ended, for a job that ended without an outcome message (e.g. ``exit code -9``)."""

    def request_stop(self) -> None:
        """Ask the runner to stop at its next ``should_stop`` check."""

    def kill(self) -> None:
        """Stop it now."""

    def close(self) -> None:
        """Release resources after the outcome was handled."""


class Backend(Protocol):
    """Where jobs run: a child process, a thread of this process, or a Ray task."""

    name: str
    gpu_ok: bool

    def launch(self, runner: Runner, request: RunRequest, log_path: str) -> Execution: ...

    def close(self) -> None: ...
