"""Artifacts: round trip, sidecar facts, schema version and trusted types."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recommender import ArtifactError, MetaLearner, load_meta_learner, records_digest, save_meta_learner
from recommender.persistence import SCHEMA_VERSION, _skops_io, sidecar_path
from tests.recommender.conftest import FAST
from tests.recommender.synthetic import ALL_AVAILABLE, STUDENTS, TEACHERS


@pytest.fixture(scope="module")
def saved(history, tmp_path_factory):
    learner = MetaLearner(**FAST).fit(history)
    path = save_meta_learner(
        learner,
        tmp_path_factory.mktemp("art") / "meta.skops",
        records=history,
        evaluation={"meta_learner": 0.99},
    )
    return learner, path


def test_round_trip_predicts_and_recommends_the_same(saved, history):
    learner, path = saved
    loaded = load_meta_learner(path)
    np.testing.assert_allclose(loaded.predict(history[:40]), learner.predict(history[:40]))
    assert loaded.get_params()["max_iter"] == FAST["max_iter"] and loaded.availability is None
    loaded.set_params(availability=ALL_AVAILABLE)  # availability belongs to the serving machine
    meta = history[0].meta_features
    a = learner.recommend(meta, TEACHERS[0], STUDENTS[0], k=3)
    b = loaded.recommend(meta, TEACHERS[0], STUDENTS[0], k=3)
    assert [r.kd_config for r in a] == [r.kd_config for r in b]
    np.testing.assert_allclose([r.interval for r in a], [r.interval for r in b])


def test_sidecar_records_versions_digest_and_features(saved, history):
    learner, path = saved
    side = json.loads(sidecar_path(path).read_text())
    assert side["schema_version"] == SCHEMA_VERSION
    assert side["records_digest"] == records_digest(history)
    assert set(side["library_versions"]) == {"scikit-learn", "numpy", "skops"}
    assert side["feature_names"] == list(learner.feature_names_in_)
    assert side["evaluation"] == {"meta_learner": 0.99} and side["created_at"]


def test_other_schema_version_is_refused(saved, tmp_path):
    _, path = saved
    copy = tmp_path / "old.skops"
    copy.write_bytes(path.read_bytes())
    side = json.loads(sidecar_path(path).read_text())
    sidecar_path(copy).write_text(json.dumps({**side, "schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(
        ArtifactError,
        match=f"schema version {SCHEMA_VERSION + 1}, this code reads version {SCHEMA_VERSION}; refit",
    ):
        load_meta_learner(copy)


def test_missing_files_and_unfitted_learner(tmp_path, saved):
    with pytest.raises(ArtifactError, match="not found"):
        load_meta_learner(tmp_path / "none.skops")
    lonely = tmp_path / "lonely.skops"
    lonely.write_bytes(saved[1].read_bytes())
    with pytest.raises(ArtifactError, match="sidecar not found"):
        load_meta_learner(lonely)
    with pytest.raises(ArtifactError, match="unfitted"):
        save_meta_learner(MetaLearner(), tmp_path / "x.skops")


def test_untrusted_types_are_refused(tmp_path, saved):
    path = tmp_path / "evil.skops"
    _skops_io().dump({"schema_version": SCHEMA_VERSION, "payload": SomethingElse()}, path)
    sidecar_path(path).write_text(sidecar_path(saved[1]).read_text())
    with pytest.raises(ArtifactError, match="not trusted: .*SomethingElse"):
        load_meta_learner(path)


class SomethingElse:
    pass
