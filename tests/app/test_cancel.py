"""Cancel is final: a job cancelled at any moment ends ``cancelled`` and adds no sweep record.

The stages: queued, claimed but not started, running (inline thread and child process), finished
by its runner but not yet recorded (the cancel wins), and recorded (too late: a 409, never a 200
that says "cancellation requested").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from app.domain import JobStatus
from app.jobs.dispatcher import Dispatcher
from app.jobs.local import ProcessBackend, ThreadBackend
from tests.app.conftest import Api
from tests.app.fake_runners import FAKE_RUNNERS


def _wait(predicate: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.02)
    raise TimeoutError(f"condition not met within {timeout} s")


def _submit(api: Api, steps: int) -> str:
    dataset = api.builtin_dataset()
    config = {"training": {"epochs": 1, "max_steps": steps}}
    response = api.post("/jobs", json={"dataset_id": dataset["id"], "kd_config": config})
    assert response.status_code == 202, response.text
    return response.json()["id"]


def _dispatcher(api: Api, backend: Any = None) -> Dispatcher:
    return Dispatcher(
        api.services.store, api.services.settings, backend or ThreadBackend(False), runners=FAKE_RUNNERS
    )


def _tick_until_step(dispatcher: Dispatcher, api: Api, job_id: str, step: int) -> None:
    """Supervise the job (which stores its progress) until it reports ``step``."""

    def reached() -> bool:
        dispatcher.tick()
        return (api.get(f"/jobs/{job_id}").json().get("progress") or {}).get("step", 0) >= step

    _wait(reached)


def _assert_cancelled_without_record(api: Api, job_id: str) -> None:
    job = api.get(f"/jobs/{job_id}").json()
    assert job["status"] == "cancelled", job
    assert job["metrics"] is None and job["artifacts"] == []
    assert api.services.store.sweep_records.list(job_id=job_id)[1] == 0
    assert api.services.store.sweep_records.list()[1] == 0


def test_cancel_while_queued_is_immediate_and_nothing_runs(api: Api) -> None:
    job_id = _submit(api, steps=2)
    response = api.post(f"/jobs/{job_id}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    api.drain()  # a worker finds nothing to claim
    _assert_cancelled_without_record(api, job_id)
    assert "attempt 1 started" not in api.get(f"/jobs/{job_id}/events", params={"timeout_s": 1}).text


def test_cancel_between_claim_and_first_step(api: Api) -> None:
    job_id = _submit(api, steps=1)
    dispatcher = _dispatcher(api)
    claimed = api.services.store.jobs.claim(
        dispatcher.worker_id, lease_s=30, gpu_ok=False, kinds=FAKE_RUNNERS.keys()
    )
    assert claimed is not None and claimed.id == job_id
    response = api.post(f"/jobs/{job_id}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "running" and response.json()["cancel_requested"] is True
    # the job is launched as claimed; its one step finishes before any heartbeat reads the flag
    dispatcher._launch(claimed)
    dispatcher.run_until_idle(timeout=30)
    _assert_cancelled_without_record(api, job_id)


def test_cancel_a_running_inline_job(api: Api) -> None:
    job_id = _submit(api, steps=2000)
    dispatcher = _dispatcher(api)
    _tick_until_step(dispatcher, api, job_id, 2)
    assert api.post(f"/jobs/{job_id}/cancel").json()["cancel_requested"] is True
    dispatcher.run_until_idle(timeout=30)
    _assert_cancelled_without_record(api, job_id)
    assert api.get(f"/jobs/{job_id}").json()["progress"]["step"] < 2000


def test_cancel_a_running_job_in_a_child_process(api: Api) -> None:
    job_id = _submit(api, steps=2000)
    dispatcher = _dispatcher(api, ProcessBackend(False))
    _tick_until_step(dispatcher, api, job_id, 2)
    assert api.post(f"/jobs/{job_id}/cancel").json()["cancel_requested"] is True
    dispatcher.run_until_idle(timeout=60)
    _assert_cancelled_without_record(api, job_id)


def test_cancel_wins_against_a_result_not_yet_recorded(api: Api) -> None:
    """The runner has returned its result; the cancel lands before the dispatcher records it."""
    job_id = _submit(api, steps=1)
    dispatcher = _dispatcher(api)
    dispatcher.tick()
    active = dispatcher.active[job_id]
    _wait(active.execution.finished)  # the result sits in the queue, unrecorded
    response = api.post(f"/jobs/{job_id}/cancel")
    assert response.status_code == 200 and response.json()["cancel_requested"] is True
    dispatcher.run_until_idle(timeout=30)
    _assert_cancelled_without_record(api, job_id)
    events = api.get(f"/jobs/{job_id}/events", params={"timeout_s": 1}).text
    assert "the result is discarded" in events


def test_cancel_after_the_result_is_recorded_is_refused_as_too_late(api: Api) -> None:
    job_id = _submit(api, steps=1)
    api.drain()
    assert api.get(f"/jobs/{job_id}").json()["status"] == "succeeded"
    response = api.post(f"/jobs/{job_id}/cancel")
    assert response.status_code == 409
    assert "too late" in response.json()["error"]["message"]
    job = api.get(f"/jobs/{job_id}").json()
    assert job["status"] == "succeeded" and job["cancel_requested"] is False
    assert api.services.store.sweep_records.list(job_id=job_id)[1] == 1


def test_a_flagged_job_cannot_be_marked_succeeded_by_any_path(api: Api) -> None:
    store = api.services.store
    job_id = _submit(api, steps=1)
    store.jobs.claim("w1", lease_s=30, gpu_ok=False, kinds=["distill"])
    store.jobs.request_cancel(job_id)
    record = {"dataset_id": None, "source": "own", "record": {"ratio": 0.9}}
    done = store.jobs.succeed(job_id, worker_id="w1", result={"ratio": 0.9}, sweep_record=record)
    assert done.status == JobStatus.CANCELLED and done.result is None
    assert store.sweep_records.list(job_id=job_id)[1] == 0


def test_a_flagged_job_is_cancelled_not_requeued_when_its_worker_shuts_down(api: Api) -> None:
    job_id = _submit(api, steps=2000)
    dispatcher = _dispatcher(api)
    _tick_until_step(dispatcher, api, job_id, 1)
    api.post(f"/jobs/{job_id}/cancel")
    dispatcher.shutdown()  # without the flag this job would go back to the queue
    _assert_cancelled_without_record(api, job_id)
