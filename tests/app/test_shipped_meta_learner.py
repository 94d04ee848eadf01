"""A fresh service recommends from the shipped meta-learner with no extra step."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.services.meta_learner import SHIPPED_ARTIFACT, SHIPPED_RECORDS
from tests.app.conftest import make_settings

pytestmark = pytest.mark.skipif(
    not SHIPPED_ARTIFACT.is_file(), reason=f"no shipped artifact at {SHIPPED_ARTIFACT}"
)


def test_fresh_service_registers_the_shipped_artifact_and_recommends(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from app.main import create_app
    from recommender import read_records
    from recommender.sweep_kb import ARTIFACT_FILE, ARTIFACTS_DIR, RECORDS_FILE

    assert (SHIPPED_ARTIFACT, SHIPPED_RECORDS) == (
        ARTIFACTS_DIR / ARTIFACT_FILE,
        ARTIFACTS_DIR / RECORDS_FILE,
    )
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'fresh.db'}")  # no artifact configured
    with TestClient(create_app(settings)) as client:
        _, key = client.app.state.services.store.api_keys.create("tests")
        auth = {"X-API-Key": key}  # reads need a key too
        info = client.get("/meta-learner", headers=auth).json()
        assert info["active"]["source"] == "shipped" and info["active"]["version"] == 1
        assert info["records"] == len(read_records(SHIPPED_RECORDS))  # the history is imported once
        dataset = client.post("/datasets", data={"builtin": "rt_polarity_200"}, headers=auth).json()
        body = {"dataset_id": dataset["id"], "student": {"num_layers": 1}, "k": 3}
        response = client.post("/recommend", json=body, headers=auth)
        assert response.status_code == 201, response.text
        rec = response.json()
        assert rec["meta_learner_version"] == 1 and len(rec["items"]) == 3
