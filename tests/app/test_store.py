"""The store: job state machine, atomic claims, leases, idempotency, append-only records, keys."""

from __future__ import annotations

import threading
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from app.domain import TRANSITIONS, Dataset, JobStatus, Resources, check_transition, utcnow
from app.errors import DatasetInUseError, IllegalTransitionError, NotFoundError
from app.store import Store


def _dataset(store: Store) -> Dataset:
    return store.datasets.create(
        Dataset(
            id=store.datasets.new_id(),
            name="d",
            source="builtin",
            builtin_name="rt_polarity_200",
            filename=None,
            digest="0" * 64,
            task_kind="classification",
            num_labels=2,
            labels=["neg", "pos"],
            n_train=170,
            n_dev=30,
            options={},
            meta_features={"n_train": 170.0},
            created_at=utcnow(),
        ),
        None,
    )


def _job(store: Store, **kw: Any) -> Any:
    job, created = store.jobs.create(
        kind="distill",
        payload={"spec": {}},
        resources=Resources(time_budget_s=60),
        max_attempts=kw.pop("max_attempts", 2),
        **kw,
    )
    assert created
    return job


@pytest.fixture
def store(services: Any) -> Store:
    return services.store


def test_state_machine_table_has_terminal_states_without_exits() -> None:
    for status in JobStatus:
        assert (not TRANSITIONS[status]) == status.terminal
    with pytest.raises(IllegalTransitionError) as err:
        check_transition("j", JobStatus.SUCCEEDED, JobStatus.RUNNING)
    assert err.value.code == "illegal_transition"


def test_job_lifecycle_records_status_events(store: Store) -> None:
    job = _job(store)
    assert job.status == JobStatus.QUEUED and job.attempts == 0
    claimed = store.jobs.claim("w1", lease_s=10, gpu_ok=False, kinds=["distill"])
    assert claimed is not None and claimed.id == job.id
    assert claimed.status == JobStatus.RUNNING and claimed.attempts == 1 and claimed.worker_id == "w1"
    done = store.jobs.transition(job.id, JobStatus.SUCCEEDED, worker_id="w1", result={"ratio": 0.9})
    assert (
        done.status == JobStatus.SUCCEEDED and done.finished_at is not None and done.result == {"ratio": 0.9}
    )
    statuses = [e.data["status"] for e in store.jobs.events(job.id) if e.type == "status"]
    assert statuses == ["queued", "running", "succeeded"]


def test_illegal_transitions_raise_typed_errors(store: Store) -> None:
    job = _job(store)
    with pytest.raises(IllegalTransitionError):
        store.jobs.transition(job.id, JobStatus.SUCCEEDED)  # queued -> succeeded skips running
    store.jobs.transition(job.id, JobStatus.CANCELLED)
    for target in (JobStatus.RUNNING, JobStatus.QUEUED, JobStatus.FAILED, JobStatus.CANCELLED):
        with pytest.raises(IllegalTransitionError):
            store.jobs.transition(job.id, target)
    with pytest.raises(NotFoundError):
        store.jobs.transition("missing", JobStatus.CANCELLED)


def test_transition_is_refused_to_a_worker_that_lost_the_job(store: Store) -> None:
    job = _job(store)
    store.jobs.claim("w1", lease_s=10, gpu_ok=False, kinds=["distill"])
    with pytest.raises(IllegalTransitionError):
        store.jobs.transition(job.id, JobStatus.SUCCEEDED, worker_id="w2")
    assert store.jobs.get(job.id).status == JobStatus.RUNNING


def test_claim_is_atomic_under_concurrent_workers(store: Store) -> None:
    jobs = {_job(store).id for _ in range(6)}
    claimed: list[str] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while (job := store.jobs.claim(name, lease_s=10, gpu_ok=False, kinds=["distill"])) is not None:
            with lock:
                claimed.append(job.id)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(jobs)  # every job claimed exactly once


def test_claim_respects_kind_and_gpu(store: Store) -> None:
    gpu_job = _job(store)
    store.jobs.transition(gpu_job.id, JobStatus.CANCELLED)
    gpu_job, _ = store.jobs.create(
        kind="distill", payload={}, resources=Resources(gpu=True, time_budget_s=5), max_attempts=1
    )
    assert store.jobs.claim("cpu", lease_s=5, gpu_ok=False, kinds=["distill"]) is None
    assert store.jobs.claim("gpu", lease_s=5, gpu_ok=True, kinds=["other"]) is None
    assert store.jobs.claim("gpu", lease_s=5, gpu_ok=True, kinds=["distill"]).id == gpu_job.id


def test_expired_lease_requeues_then_fails_after_max_attempts(store: Store) -> None:
    job = _job(store, max_attempts=2)
    store.jobs.claim("dead", lease_s=0.0, gpu_ok=False, kinds=["distill"])
    [expired] = store.jobs.expired(utcnow() + timedelta(seconds=1))
    assert store.jobs.release_expired(expired).status == JobStatus.QUEUED
    again = store.jobs.claim("dead-too", lease_s=0.0, gpu_ok=False, kinds=["distill"])
    assert again.attempts == 2
    [expired] = store.jobs.expired(utcnow() + timedelta(seconds=1))
    failed = store.jobs.release_expired(expired)
    assert failed.status == JobStatus.FAILED and failed.error_code == "worker_lost"
    assert store.jobs.get(job.id).status == JobStatus.FAILED


def test_heartbeat_keeps_the_lease_and_release_skips_a_renewed_job(store: Store) -> None:
    job = _job(store)
    store.jobs.claim("w1", lease_s=0.0, gpu_ok=False, kinds=["distill"])
    stale = store.jobs.get(job.id)
    assert store.jobs.heartbeat(job.id, "w1", lease_s=60)
    assert not store.jobs.heartbeat(job.id, "w2", lease_s=60)
    assert store.jobs.release_expired(stale) is None  # renewed meanwhile: left alone
    assert store.jobs.get(job.id).status == JobStatus.RUNNING


def test_cancel_queued_is_immediate_running_is_flagged_finished_is_illegal(store: Store) -> None:
    queued = _job(store)
    assert store.jobs.request_cancel(queued.id).status == JobStatus.CANCELLED
    running = _job(store)
    store.jobs.claim("w1", lease_s=10, gpu_ok=False, kinds=["distill"])
    flagged = store.jobs.request_cancel(running.id)
    assert flagged.status == JobStatus.RUNNING and flagged.cancel_requested
    with pytest.raises(IllegalTransitionError):
        store.jobs.request_cancel(queued.id)


def test_expired_job_with_cancel_request_is_cancelled_not_requeued(store: Store) -> None:
    job = _job(store)
    store.jobs.claim("dead", lease_s=0.0, gpu_ok=False, kinds=["distill"])
    store.jobs.request_cancel(job.id)
    [expired] = store.jobs.expired(utcnow() + timedelta(seconds=1))
    assert store.jobs.release_expired(expired).status == JobStatus.CANCELLED


def test_idempotency_key_returns_the_first_job(store: Store) -> None:
    first, created = store.jobs.create(
        kind="distill",
        payload={},
        resources=Resources(),
        max_attempts=1,
        idempotency_key="k1",
        request_hash="h",
    )
    again, created_again = store.jobs.create(
        kind="distill",
        payload={},
        resources=Resources(),
        max_attempts=1,
        idempotency_key="k1",
        request_hash="h",
    )
    assert created and not created_again and again.id == first.id
    assert store.jobs.list()[1] == 1


def test_sweep_record_lands_with_success_only_once(store: Store) -> None:
    job = _job(store)
    store.jobs.claim("w1", lease_s=10, gpu_ok=False, kinds=["distill"])
    record = {
        "dataset_id": None,
        "source": "own",
        "record": {"ratio": 0.9},
        "code_version": "x",
        "hardware": "cpu",
        "seed": 1,
    }
    store.jobs.transition(job.id, JobStatus.SUCCEEDED, worker_id="w1", sweep_record=record)
    with pytest.raises(IllegalTransitionError):
        store.jobs.transition(job.id, JobStatus.SUCCEEDED, worker_id="w1", sweep_record=record)
    rows, count = store.sweep_records.list(job_id=job.id)
    assert count == 1 and rows[0].record == {"ratio": 0.9} and rows[0].code_version == "x"
    assert not hasattr(store.sweep_records, "delete") and not hasattr(store.sweep_records, "update")


def test_dataset_soft_delete_refused_while_in_use(store: Store) -> None:
    dataset = _dataset(store)
    job = _job(store, dataset_id=dataset.id)
    with pytest.raises(DatasetInUseError):
        store.datasets.delete(dataset.id)
    store.jobs.transition(job.id, JobStatus.CANCELLED)
    store.datasets.delete(dataset.id)
    with pytest.raises(NotFoundError):
        store.datasets.get(dataset.id)
    assert store.datasets.get(dataset.id, include_deleted=True).id == dataset.id
    assert store.datasets.list()[1] == 0


def test_api_keys_are_hashed_verified_and_revocable(store: Store) -> None:
    key, token = store.api_keys.create("ci")
    assert token.startswith(f"adk_{key.prefix}_")
    assert store.api_keys.verify(token).id == key.id
    assert store.api_keys.verify(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert store.api_keys.verify("garbage") is None
    from sqlalchemy import select

    from app.db.tables import ApiKeyRow

    with store.db.read() as s:
        assert token not in str(s.scalars(select(ApiKeyRow.key_hash)).all())
    store.api_keys.revoke(key.id)
    assert store.api_keys.verify(token) is None


def test_a_revoked_key_is_refused_by_another_process_once_its_cache_expires(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.store import keys

    key, token = store.api_keys.create("ci")
    other = keys.ApiKeyStore(store.db)  # another API process over the same database
    assert other.verify(token).id == key.id
    store.api_keys.revoke(key.id)
    assert store.api_keys.verify(token) is None  # this process: at once
    assert other.verify(token) is not None  # the other one trusts its check for VERIFY_CACHE_S
    later = keys.time.monotonic() + keys.VERIFY_CACHE_S + 1
    monkeypatch.setattr(keys, "time", SimpleNamespace(monotonic=lambda: later))
    assert other.verify(token) is None
