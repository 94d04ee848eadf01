"""The local executor: jobs in child processes, cancellation, time budget, kill after grace, and
graceful shutdown with resume."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from app.jobs.dispatcher import Dispatcher
from app.jobs.executor import Executor
from app.jobs.local import ProcessBackend
from tests.app.conftest import Api
from tests.app.fake_runners import FAKE_RUNNERS


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"condition not met within {timeout} s")


@pytest.fixture
def worker(api: Api) -> Iterator[Callable[[], Executor]]:
    """Starts executors over child processes on the API's database; stops them at the end."""
    started: list[Executor] = []

    def start() -> Executor:
        dispatcher = Dispatcher(
            api.services.store, api.services.settings, ProcessBackend(False), runners=FAKE_RUNNERS
        )
        executor = Executor(dispatcher)
        executor.start()
        api.services.jobs.wake = executor.wake
        started.append(executor)
        return executor

    yield start
    for executor in started:
        executor.stop(timeout=30)


def _job(api: Api, dataset_id: str, steps: int, **training: Any) -> dict[str, Any]:
    config = {"training": {"epochs": 1, "max_steps": steps, **training}}
    response = api.post(
        "/jobs", json={"dataset_id": dataset_id, "kd_config": config, **training.pop("extra", {})}
    )
    assert response.status_code == 202, response.text
    return response.json()


def _status(api: Api, job_id: str) -> dict[str, Any]:
    return api.get(f"/jobs/{job_id}").json()


def test_job_runs_in_a_child_process(api: Api, worker: Callable[[], Executor]) -> None:
    dataset = api.builtin_dataset()
    worker()
    job = _job(api, dataset["id"], steps=4)
    done = wait_for(lambda: (s := _status(api, job["id"]))["status"] == "succeeded" and s)
    assert done["metrics"]["ratio"] > 0 and done["deliverable"]["status"] == "ready"
    assert api.get(f"/jobs/{job['id']}/artifacts/report.json").json()["steps_done"] == 4
    assert api.get("/sweep-records", params={"job_id": job["id"]}).json()["count"] == 1


def test_cancel_a_running_job(api: Api, worker: Callable[[], Executor]) -> None:
    dataset = api.builtin_dataset()
    worker()
    job = _job(api, dataset["id"], steps=400)
    wait_for(lambda: (_status(api, job["id"]).get("progress") or {}).get("step", 0) >= 2)
    assert api.post(f"/jobs/{job['id']}/cancel").json()["cancel_requested"] is True
    done = wait_for(lambda: (s := _status(api, job["id"]))["status"] == "cancelled" and s, timeout=30)
    assert done["progress"]["step"] < 400
    assert "stop requested: cancelled" in api.get(f"/jobs/{job['id']}/events").text
    assert api.get("/sweep-records").json()["count"] == 0


def test_time_budget_is_enforced(api: Api, worker: Callable[[], Executor]) -> None:
    dataset = api.builtin_dataset()
    worker()
    config = {"training": {"epochs": 1, "max_steps": 1000}}
    job = api.post(
        "/jobs", json={"dataset_id": dataset["id"], "kd_config": config, "resources": {"time_budget_s": 2}}
    ).json()
    done = wait_for(lambda: (s := _status(api, job["id"]))["status"] == "failed" and s, timeout=60)
    assert done["error"]["code"] == "time_budget_exceeded"


def test_a_job_that_ignores_stop_is_killed_after_the_grace(api: Api, worker: Callable[[], Executor]) -> None:
    dataset = api.builtin_dataset()
    worker()
    config = {"training": {"epochs": 1, "max_steps": 1000, "seed": 15}}  # seed 15: ignores should_stop
    job = api.post("/jobs", json={"dataset_id": dataset["id"], "kd_config": config}).json()
    wait_for(lambda: _status(api, job["id"])["status"] == "running")
    api.post(f"/jobs/{job['id']}/cancel")
    done = wait_for(lambda: (s := _status(api, job["id"]))["status"] == "cancelled" and s, timeout=40)
    assert done["progress"]["step"] < 1000


def test_shutdown_requeues_and_the_next_worker_resumes(api: Api, worker: Callable[[], Executor]) -> None:
    dataset = api.builtin_dataset()
    first = worker()
    job = _job(api, dataset["id"], steps=60)
    wait_for(lambda: (_status(api, job["id"]).get("progress") or {}).get("step", 0) >= 5)
    first.stop(timeout=30)
    assert _status(api, job["id"])["status"] == "queued"
    worker()
    done = wait_for(lambda: (s := _status(api, job["id"]))["status"] == "succeeded" and s, timeout=60)
    assert done["attempts"] == 2
    report = api.get(f"/jobs/{job['id']}/artifacts/report.json").json()
    assert report["resume_starts"][0] == 0 and report["resume_starts"][1] >= 5  # resumed, not restarted
    assert api.get("/sweep-records").json()["count"] == 1


class _LateMessages:
    """An execution that ends before its last messages are polled (the race a real queue allows)."""

    def __init__(self, late: list[tuple[str, Any]]) -> None:
        self._late, self._polls = late, 0

    def poll(self) -> list[tuple[str, Any]]:
        self._polls += 1
        if self._polls == 1:  # nothing yet; by the time finished() is asked, it has ended
            return []
        late, self._late = self._late, []
        return late

    def finished(self) -> bool:
        return self._polls >= 1

    def exit_info(self) -> str:
        return "ended"

    def request_stop(self) -> None: ...

    def kill(self) -> None: ...

    def close(self) -> None: ...


class _LateBackend:
    name, gpu_ok = "late", False

    def __init__(self, late: list[tuple[str, Any]]) -> None:
        self.late = late

    def launch(self, runner: Any, request: Any, log_path: str) -> _LateMessages:
        return _LateMessages(self.late)

    def close(self) -> None: ...


def test_messages_sent_just_before_the_end_are_kept(api: Api) -> None:
    """Progress and logs that arrive with the outcome are stored in order; throttled progress is
    flushed, so the job's last progress and last progress event are what the runner sent last."""
    dataset = api.builtin_dataset()
    settings = api.services.settings
    slow_events = settings.model_copy(
        update={"worker": settings.worker.model_copy(update={"progress_event_interval_s": 3600.0})}
    )
    late = [
        ("progress", {"stage": "kd", "step": 1}),
        ("progress", {"stage": "kd", "step": 2}),
        ("progress", {"stage": "kd", "step": 3}),
        ("log", {"message": "last words"}),
        ("progress", {"stage": "export"}),
        ("progress", {"stage": "export", "part": "int8"}),
        ("error", {"code": "runner_failed", "message": "boom"}),
    ]
    job = _job(api, dataset["id"], steps=3)
    dispatcher = Dispatcher(api.services.store, slow_events, _LateBackend(late), runners=FAKE_RUNNERS)
    dispatcher.run_until_idle(timeout=30)
    done = _status(api, job["id"])
    assert done["status"] == "failed" and done["error"]["code"] == "runner_failed", done
    assert done["progress"] == {"stage": "export", "part": "int8"}
    events = api.services.store.jobs.events(job["id"])
    progress = [e.data for e in events if e.type == "progress"]
    # the first of each stage (throttling holds back the rest) and the last one
    assert progress == [{"stage": "kd", "step": 1}, {"stage": "export"}, {"stage": "export", "part": "int8"}]
    assert any(e.type == "log" and e.data == {"message": "last words"} for e in events)
