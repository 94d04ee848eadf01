"""Executors behind one interface: the dispatcher in a background thread, over the chosen backend.

``local`` (default): each job in a child process. ``ray``: each job a Ray task on the cluster at
``ray_address``. ``inline``: jobs in a thread of this process (tests and debugging).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from app.domain import Job
from app.jobs.dispatcher import Dispatcher
from app.jobs.execution import Backend
from app.jobs.local import ProcessBackend, ThreadBackend, detect_gpu
from app.jobs.runners import RUNNERS, Runner
from app.settings import Settings
from app.store import Store
from models.registry import Registry

log = logging.getLogger(__name__)


def make_backend(settings: Settings) -> Backend:
    gpu_ok = settings.worker.gpu if settings.worker.gpu is not None else detect_gpu()
    if settings.executor == "ray":
        from app.jobs.ray_backend import RayBackend

        return RayBackend(settings.ray_address or "auto")
    if settings.executor == "inline":
        return ThreadBackend(gpu_ok)
    return ProcessBackend(gpu_ok)


class Executor:
    """Runs a :class:`Dispatcher` in a daemon thread; ``wake`` makes it poll at once."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.dispatcher.run, args=(self._stop,), daemon=True, name="autodistiller-executor"
        )
        self._thread.start()

    def wake(self) -> None:
        self.dispatcher.wake()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float | None = None) -> None:
        """Stop claiming; running jobs stop gracefully and go back to the queue."""
        self._stop.set()
        self.dispatcher.wake()
        if self._thread is not None:
            self._thread.join(timeout)


class BackgroundRefit:
    """The automatic refit policy, run off the dispatcher thread (one refit at a time)."""

    def __init__(self, refit: Callable[[], object]) -> None:
        self._refit = refit
        self._running = threading.Lock()

    def __call__(self, _job: Job) -> None:
        if not self._running.acquire(blocking=False):
            return  # one is running; the next success checks the policy again

        def run() -> None:
            try:
                self._refit()
            except Exception:
                log.exception("automatic meta-learner refit failed")
            finally:
                self._running.release()

        threading.Thread(target=run, daemon=True, name="autodistiller-refit").start()


def build_executor(
    settings: Settings,
    store: Store,
    *,
    on_succeeded: Callable[[Job], None] | None = None,
    runners: Registry[Runner] = RUNNERS,
) -> Executor:
    dispatcher = Dispatcher(
        store, settings, make_backend(settings), runners=runners, on_succeeded=on_succeeded
    )
    return Executor(dispatcher)
