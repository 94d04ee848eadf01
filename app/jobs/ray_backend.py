"""Ray backend: each job is a Ray task (asking for a GPU when the job does); the dispatcher mirrors
its status into the database exactly as for local jobs.

Progress and the stop flag travel through a small per-job actor (``JobChannel``), so Ray nodes
need no database access. Tasks and actors are owned by the dispatcher's driver: if the worker
dies, Ray cleans them up, the job's lease expires and another worker requeues it.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from app.errors import ExecutorUnavailableError
from app.jobs.execution import Message, execute, jsonable
from app.jobs.runners import Runner, RunRequest

log = logging.getLogger(__name__)


class _JobChannel:
    """Messages from a running task to the dispatcher, and the stop flag the other way."""

    def __init__(self) -> None:
        self._messages: list[Message] = []
        self._stop = False

    def put(self, message: Message) -> None:
        self._messages.append(message)

    def drain(self) -> list[Message]:
        out, self._messages = self._messages, []
        return out

    def request_stop(self) -> None:
        self._stop = True

    def should_stop(self) -> bool:
        return self._stop


def _run_task(runner: Runner, request: RunRequest, channel: Any, log_path: str) -> Message:
    import ray

    handler = logging.FileHandler(log_path)  # a node-local log; the dispatcher's node shares it
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)
    try:
        return execute(
            runner,
            request,
            lambda d: channel.put.remote(("progress", jsonable(d))),
            lambda: bool(ray.get(channel.should_stop.remote())),
        )
    except KeyboardInterrupt:  # ray.cancel without force
        return ("cancelled", None)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


class RayExecution:
    def __init__(self, ray: Any, ref: Any, channel: Any) -> None:
        self._ray, self._ref, self._channel = ray, ref, channel
        self._done = False
        self._exit = "the Ray task ended without an outcome"

    def poll(self) -> list[Message]:
        ray = self._ray
        try:
            messages = list(ray.get(self._channel.drain.remote(), timeout=10))
        except Exception as exc:  # the channel actor died with its node
            log.warning("job channel unreachable: %s", exc)
            messages = []
        ready, _ = ray.wait([self._ref], timeout=0)
        if ready and not self._done:
            self._done = True
            with contextlib.suppress(Exception):  # the channel died with the task: nothing more to read
                messages += list(ray.get(self._channel.drain.remote(), timeout=10))
            try:
                messages.append(tuple(ray.get(self._ref)))
            except Exception as exc:  # worker died, task cancelled by force, node lost
                self._exit = f"the Ray task failed: {type(exc).__name__}: {str(exc)[:500]}"
        return messages

    def finished(self) -> bool:
        return self._done

    def exit_info(self) -> str:
        return self._exit

    def request_stop(self) -> None:
        self._channel.request_stop.remote()

    def kill(self) -> None:
        self._ray.cancel(self._ref, force=True)

    def close(self) -> None:
        with contextlib.suppress(Exception):  # already gone
            self._ray.kill(self._channel)


class RayBackend:
    """Connects to a Ray cluster (``ray_address``) and runs each job as a task."""

    name = "ray"
    gpu_ok = True  # Ray schedules GPU requests onto GPU nodes

    def __init__(self, address: str, cpus_per_job: float = 1.0) -> None:
        try:
            import ray
        except ImportError as exc:
            raise ExecutorUnavailableError("the Ray executor needs `pip install 'ray[default]'`") from exc
        self._ray = ray
        self.cpus_per_job = cpus_per_job
        try:
            if not ray.is_initialized():
                ray.init(
                    address=address,
                    namespace="autodistiller",
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                )
        except Exception as exc:
            raise ExecutorUnavailableError(f"cannot connect to the Ray cluster at {address}: {exc}") from exc
        self._task = ray.remote(max_retries=0)(_run_task)
        self._channel_cls = ray.remote(num_cpus=0)(_JobChannel)

    def launch(self, runner: Runner, request: RunRequest, log_path: str) -> RayExecution:
        channel = self._channel_cls.remote()
        ref = self._task.options(
            num_cpus=self.cpus_per_job,
            num_gpus=1 if request.gpu else 0,
            name=f"autodistiller-job-{request.job_id[:8]}",
        ).remote(runner, request, channel, log_path)
        return RayExecution(self._ray, ref, channel)

    def close(self) -> None:
        if self._ray.is_initialized():
            self._ray.shutdown()
