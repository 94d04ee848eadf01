"""Entry point of a job's child process (local backend).

The child dies with its worker: ``PR_SET_PDEATHSIG`` on Linux, and ``should_stop`` also checks
that the parent is still there. An orphan must never keep training, because the lease of a dead
worker expires and the job is requeued: two processes would then write the same checkpoint.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
from typing import Any

from app.jobs.execution import execute, jsonable
from app.jobs.runners import Runner, RunRequest

_PR_SET_PDEATHSIG = 1
ORPHAN_EXIT_CODE = 70


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        # without prctl, the parent check in should_stop still applies
        with contextlib.suppress(OSError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _redirect_output(log_path: str) -> None:
    """Send this process's stdout and stderr (Python and native code alike) to the job log."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def child_main(
    runner: Runner, request: RunRequest, stop_event: Any, queue: Any, log_path: str, parent_pid: int
) -> None:
    """Run one job and put its messages on ``queue``; exit code 0 once the outcome is sent."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the worker decides
    if os.getppid() != parent_pid:
        os._exit(ORPHAN_EXIT_CODE)
    _redirect_output(log_path)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        force=True,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    def should_stop() -> bool:
        if os.getppid() != parent_pid:
            os._exit(ORPHAN_EXIT_CODE)
        return stop_event.is_set()

    def progress(data: dict[str, Any]) -> None:
        queue.put(("progress", jsonable(data)))

    outcome = execute(runner, request, progress, should_stop)
    queue.put(outcome)
    queue.close()
    queue.join_thread()
