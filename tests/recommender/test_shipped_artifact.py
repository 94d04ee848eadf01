"""The shipped knowledge base: the artifact loads, matches its committed records, and is small."""

from __future__ import annotations

import math

import pytest

from recommender import load_meta_learner, read_records, records_digest
from recommender.persistence import read_sidecar
from recommender.sweep import SWEEP_GRID
from recommender.sweep_kb import ARTIFACT_FILE, ARTIFACTS_DIR, KB_HELDOUT, RECORDS_FILE

ARTIFACT = ARTIFACTS_DIR / ARTIFACT_FILE
RECORDS = ARTIFACTS_DIR / RECORDS_FILE
pytestmark = pytest.mark.skipif(not ARTIFACT.is_file(), reason=f"no shipped artifact at {ARTIFACT}")


@pytest.fixture(scope="module")
def records():
    return read_records(RECORDS)


def test_artifact_loads_and_its_digest_matches_the_committed_records(records):
    learner = load_meta_learner(ARTIFACT)
    sidecar = read_sidecar(ARTIFACT)
    assert sidecar["records_digest"] == records_digest(records)
    assert sidecar["n_records"] == learner.n_records_ == len(records)
    assert learner.grid == SWEEP_GRID  # it ranks every runnable component, not only the paper's


def test_records_carry_their_provenance(records):
    assert {r.dataset_id.split(":")[0] for r in records}.isdisjoint({KB_HELDOUT})
    keys = [r.raw.get("run_key") for r in records]
    assert all(keys) and len(set(keys)) == len(keys)
    for r in records:
        assert r.source == "own" and r.kd_config is not None and math.isfinite(r.ratio)
        assert r.code_version and r.hardware and r.created_at and r.seed is not None and r.run_id


def test_shipped_learner_recommends_for_a_recorded_dataset(records):
    learner = load_meta_learner(ARTIFACT)
    r = records[0]
    out = learner.recommend(r.meta_features, r.teacher, r.student, k=3)
    assert len(out) == 3 and all(math.isfinite(x.predicted_ratio) for x in out)


def test_committed_files_stay_small():
    assert ARTIFACT.stat().st_size < 5 * 2**20 and RECORDS.stat().st_size < 3 * 2**20
