"""SIGKILL of the worker that drives a search (and runs its trial jobs): a second worker finishes
the search without training any finished trial rung again."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.app.conftest import Api
from tests.app.test_search_driver import FAST
from tests.app.test_worker_local import wait_for
from tests.app.test_worker_recovery import _worker


def test_search_resumes_after_its_worker_is_killed(api: Api, tmp_path: Path) -> None:
    dataset = api.builtin_dataset()
    body = {
        "dataset_id": dataset["id"],
        "max_runs": 4,
        "portfolio_size": 2,
        "training": {**FAST, "max_steps": 20},  # rung 1: 1 s, rung 3: 3 s of fake training
    }
    search_id = api.post("/searches", json=body).json()["id"]
    services = api.services

    def finished_jobs() -> dict[str, str]:
        board = services.searches.leaderboard(search_id)
        return {j: services.store.jobs.get(j).status.value for t in board for j in t.job_ids}

    log = tmp_path / "worker.log"
    first = _worker(api, log)
    try:
        # killed once two rungs have finished and another is training
        wait_for(
            lambda: (
                list(finished_jobs().values()).count("succeeded") >= 2
                and "running" in finished_jobs().values()
            ),
            timeout=120,
        )
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    before = finished_jobs()
    done_before = {j for j, status in before.items() if status == "succeeded"}
    interrupted = {j for j, status in before.items() if status == "running"}
    assert services.searches.get(search_id).status == "running"
    second = _worker(api, log)
    try:
        search = wait_for(lambda: (s := services.searches.get(search_id)).terminal and s, timeout=120)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
    assert search.status == "succeeded", log.read_text()[-3000:]
    board = services.searches.leaderboard(search_id)
    assert len(board) == 4
    jobs = [j for t in board for j in t.job_ids]
    assert len(jobs) == len(set(jobs))  # one job per (trial, rung): nothing queued twice
    for job_id in done_before:  # finished before the kill: never claimed again
        assert job_id in jobs and services.store.jobs.get(job_id).attempts == 1
    for job_id in interrupted:  # the killed worker's job resumed under the same id
        job = services.store.jobs.get(job_id)
        assert job.status.value == "succeeded" and job.attempts == 2
    all_jobs, count = services.store.jobs.list(status=None, dataset_id=None, owner=None, offset=0, limit=100)
    assert count == len(jobs)  # no orphan job outside the leaderboard
    records, n_records = services.store.sweep_records.list(limit=100)
    assert n_records == len(jobs)  # each rung appended its record exactly once
