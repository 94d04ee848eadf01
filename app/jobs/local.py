"""Local backends: a child process per job (the default) and an in-process thread (``inline``)."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue as queue_mod
import shutil
import threading
from typing import Any

from app.jobs.child import child_main
from app.jobs.execution import Message, execute
from app.jobs.runners import Runner, RunRequest

log = logging.getLogger(__name__)


def detect_gpu() -> bool:
    """Whether this machine has an NVIDIA GPU, without importing torch."""
    return shutil.which("nvidia-smi") is not None


def _drain(q: Any) -> list[Message]:
    out: list[Message] = []
    while True:
        try:
            out.append(q.get_nowait())
        except queue_mod.Empty:
            return out
        except (EOFError, OSError):  # the pipe closed under us: the process is gone
            return out


class ProcessExecution:
    def __init__(self, proc: Any, q: Any, stop_event: Any) -> None:
        self._proc, self._queue, self._stop = proc, q, stop_event

    def poll(self) -> list[Message]:
        return _drain(self._queue)

    def finished(self) -> bool:
        return self._proc.exitcode is not None

    def exit_info(self) -> str:
        code = self._proc.exitcode
        return f"the job process was killed by signal {-code}" if code and code < 0 else f"exit code {code}"

    def request_stop(self) -> None:
        self._stop.set()

    def kill(self) -> None:
        if self._proc.exitcode is None:
            self._proc.kill()

    def close(self) -> None:
        self._proc.join(timeout=10)
        if self._proc.exitcode is None:
            self._proc.kill()
            self._proc.join(timeout=5)
        self._queue.close()
        self._queue.cancel_join_thread()


class ProcessBackend:
    """Each job in a fresh ``spawn`` child process: torch never loads into the worker itself,
    and a crash or an out-of-memory kill takes down only that job."""

    name = "local"

    def __init__(self, gpu_ok: bool) -> None:
        self.gpu_ok = gpu_ok
        self._ctx = mp.get_context("spawn")

    def launch(self, runner: Runner, request: RunRequest, log_path: str) -> ProcessExecution:
        q = self._ctx.Queue()
        stop = self._ctx.Event()
        proc = self._ctx.Process(
            target=child_main,
            args=(runner, request, stop, q, log_path, os.getpid()),
            name=f"autodistiller-job-{request.job_id[:8]}",
            daemon=True,
        )
        proc.start()
        return ProcessExecution(proc, q, stop)

    def close(self) -> None:
        pass


class ThreadExecution:
    def __init__(self, runner: Runner, request: RunRequest, log_path: str) -> None:
        self._queue: queue_mod.Queue[Message] = queue_mod.Queue()
        self._stop = threading.Event()
        self._log_path = log_path
        self._thread = threading.Thread(
            target=self._run,
            args=(runner, request),
            daemon=True,
            name=f"autodistiller-inline-{request.job_id[:8]}",
        )
        self._thread.start()

    def _run(self, runner: Runner, request: RunRequest) -> None:
        handler = logging.FileHandler(self._log_path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        try:
            self._queue.put(
                execute(runner, request, lambda d: self._queue.put(("progress", d)), self._stop.is_set)
            )
        finally:
            root.removeHandler(handler)
            handler.close()

    def poll(self) -> list[Message]:
        return _drain(self._queue)

    def finished(self) -> bool:
        return not self._thread.is_alive()

    def exit_info(self) -> str:
        return "the job thread ended without an outcome"

    def request_stop(self) -> None:
        self._stop.set()

    def kill(self) -> None:
        self._stop.set()  # a thread cannot be killed; the runner stops at its next check

    def close(self) -> None:
        self._thread.join(timeout=10)


class ThreadBackend:
    """``inline``: jobs run in a thread of the serving process. For tests and debugging only:
    no isolation, and a job that ignores ``should_stop`` cannot be killed."""

    name = "inline"

    def __init__(self, gpu_ok: bool) -> None:
        self.gpu_ok = gpu_ok

    def launch(self, runner: Runner, request: RunRequest, log_path: str) -> ThreadExecution:
        return ThreadExecution(runner, request, log_path)

    def close(self) -> None:
        pass
