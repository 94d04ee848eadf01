"""Fixtures for the service tests: a database per test (SQLite, and Postgres when
``AUTODISTILLER_TEST_DATABASE_URL`` is set), settings, services, an API client and a small
meta-learner fitted on synthetic sweep records."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from app.settings import Settings
from tests.postgres import fresh_database

PG_ENV = "AUTODISTILLER_TEST_DATABASE_URL"
TABLES = (
    "datasets, recommendations, jobs, job_events, sweep_records, sweeps, sweep_runs, api_keys, "
    "meta_learner_versions"
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ray: starts a local Ray head (needs ray[default])")


# ---- databases -----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh Postgres database for this test session, dropped at the end."""
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"{PG_ENV} is not set (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)")
    with fresh_database(url, "autodistiller_test") as fresh:
        yield fresh


def _reset_postgres(url: str) -> None:
    from app.db.engine import Database
    from app.db.migrate import upgrade

    db = Database(url)
    try:
        upgrade(db.engine)
        with db.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
    finally:
        db.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test runs on SQLite, and again on Postgres when a URL is configured."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'autodistiller.db'}"
    url = request.getfixturevalue("postgres_url")
    _reset_postgres(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'autodistiller.db'}"


# ---- settings and services -----------------------------------------------------------------------
def make_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    """Fast, isolated settings: inline executor, no embedding process, short leases."""
    worker = {
        "lease_s": 3.0,
        "heartbeat_s": 0.3,
        "poll_s": 0.1,
        "stop_grace_s": 3.0,
        "progress_event_interval_s": 0.0,
        **overrides.pop("worker", {}),
    }
    meta = {"embeddings": "off", "auto_refit_every": 0, **overrides.pop("meta_learner", {})}
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        "executor": "inline",
        "embedded_worker": False,
        "model_roots": (tmp_path / "models",),
        "worker": worker,
        "meta_learner": meta,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url)


@pytest.fixture
def services(settings: Settings) -> Iterator[Any]:
    from app.services.container import Services

    svc = Services.create(settings)
    try:
        yield svc
    finally:
        svc.close()


# ---- a small meta-learner ------------------------------------------------------------------------
def synthetic_records() -> list[Any]:
    """Sweep records on two made-up datasets: deterministic ratios that depend on the pipeline."""
    from models.config import KDConfig, ModelDescriptor
    from recommender import SweepRecord

    teacher = ModelDescriptor("minilm-l6", "bert", 6, 384, 22_700_000, 12, "vocab-a")
    student = ModelDescriptor("derived:2", "bert", 2, 384, 11_000_000, 12, "vocab-a")
    configs = [
        {"intermediate": {"loss": "none"}},
        {"intermediate": {"loss": "mi", "alpha": 0.9}},
        {"intermediate": {"loss": "mse", "strategy": "last"}},
        {"intermediate": {"loss": "pkd"}, "mixup": {"enabled": True}},
        {"intermediate": {"loss": "cos", "strategy": "emd"}},
        {"prediction": {"loss": "mse"}},
    ]
    records = []
    for d, (n_train, base) in enumerate(((170.0, 0.8), (5000.0, 0.9))):
        meta = {
            "n_train": n_train,
            "log_n_train": float(len(str(int(n_train)))),
            "is_regression": 0.0,
            "is_pair": 0.0,
            "n_labels": 2.0,
        }
        for i, cfg in enumerate(configs):
            for seed in (1, 2):
                records.append(
                    SweepRecord(
                        dataset_id=f"synthetic{d}",
                        teacher=teacher,
                        student=student,
                        kd_config=KDConfig.from_dict(cfg),
                        student_score=base * (0.85 + 0.02 * i) + 0.001 * seed,
                        teacher_score=base,
                        meta_features=meta,
                        metric="accuracy",
                        code_version="test",
                        seed=seed,
                        source="imported",
                        run_id=f"synthetic-{d}-{i}-{seed}",
                    )
                )
    return records


@pytest.fixture(scope="session")
def meta_learner_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A meta-learner fitted on :func:`synthetic_records` (few trees: it only has to answer)."""
    from threadpoolctl import threadpool_limits

    from recommender import MetaLearner, save_meta_learner

    path = tmp_path_factory.mktemp("meta") / "meta_learner.skops"
    records = synthetic_records()
    with threadpool_limits(1):  # OpenMP threads on a busy 2-core machine slow small fits 100-fold
        learner = MetaLearner(max_iter=20, min_samples_leaf=2).fit(records)
    save_meta_learner(learner, path, records=records)
    return path


# ---- the API ------------------------------------------------------------------------------------
class Api:
    """A TestClient plus the key and helpers the tests share (the fixtures' key is an admin key:
    it sees every object, as every key did before keys had scopes)."""

    def __init__(self, client: Any, key: str) -> None:
        self.client = client
        self.key = key
        self.auth = {"X-API-Key": key}

    @property
    def services(self) -> Any:
        return self.client.app.state.services

    def as_new_key(self, scope: str = "write", name: str = "other") -> Api:
        """The same client with a fresh key of ``scope``."""
        _, key = self.services.store.api_keys.create(name, scope)
        return Api(self.client, key)

    def post(self, url: str, **kw: Any) -> Any:
        return self.client.post(url, headers={**self.auth, **kw.pop("headers", {})}, **kw)

    def delete(self, url: str, **kw: Any) -> Any:
        return self.client.delete(url, headers={**self.auth, **kw.pop("headers", {})}, **kw)

    def get(self, url: str, **kw: Any) -> Any:
        return self.client.get(url, headers={**self.auth, **kw.pop("headers", {})}, **kw)

    def drain(self) -> None:
        """Run every queued job to the end with the fake runners, in this process."""
        from app.jobs.dispatcher import Dispatcher
        from app.jobs.local import ThreadBackend
        from tests.app.fake_runners import FAKE_RUNNERS

        Dispatcher(
            self.services.store, self.services.settings, ThreadBackend(False), runners=FAKE_RUNNERS
        ).run_until_idle(timeout=60)

    def builtin_dataset(self, name: str = "rt_polarity_200") -> dict[str, Any]:
        response = self.post("/datasets", data={"builtin": name})
        assert response.status_code == 201, response.text
        return response.json()


@pytest.fixture
def make_api(tmp_path: Path, database_url: str, meta_learner_artifact: Path) -> Iterator[Any]:
    """A factory of API clients; overrides go to :func:`make_settings`."""
    from fastapi.testclient import TestClient

    from app.main import create_app

    clients: list[Any] = []

    def factory(**overrides: Any) -> Api:
        overrides.setdefault("meta_learner", {"artifact": meta_learner_artifact})
        settings = make_settings(tmp_path, database_url, **overrides)
        client = TestClient(create_app(settings))
        client.__enter__()
        clients.append(client)
        _, key = client.app.state.services.store.api_keys.create("tests", "admin")
        return Api(client, key)

    try:
        yield factory
    finally:
        for client in clients:
            client.__exit__(None, None, None)


@pytest.fixture
def api(make_api: Any) -> Api:
    return make_api()
