"""Baselines: the best fixed default and nearest datasets, on constructed histories."""

from __future__ import annotations

import numpy as np
import pytest

from models.config import KDConfig
from recommender import FixedDefaultRecommender, NearestDatasetsRecommender, SweepRecord
from recommender.baselines import relative_ratios
from tests.recommender.synthetic import STUDENTS, TEACHERS

A = KDConfig.model_validate({"intermediate": {"loss": "mse"}})
B = KDConfig.model_validate({"intermediate": {"loss": "cos"}})
C = KDConfig.model_validate({"intermediate": {"loss": "pkd"}})


def rec(dataset: str, config: KDConfig, ratio: float, size: float) -> SweepRecord:
    return SweepRecord(
        dataset_id=dataset,
        teacher=TEACHERS[0],
        student=STUDENTS[0],
        kd_config=config,
        student_score=None,
        ratio=ratio,
        meta_features={"log_n_train": size},
    )


# small datasets (size 3) prefer B, large ones (size 5) prefer A; C was tried on one dataset only.
HISTORY = [
    rec("s1", A, 0.50, 3.0),
    rec("s1", B, 0.60, 3.0),
    rec("s2", A, 0.70, 3.1),
    rec("s2", B, 0.80, 3.1),
    rec("l1", A, 0.99, 5.0),
    rec("l1", B, 0.97, 5.0),
    rec("l2", A, 0.95, 5.1),
    rec("l2", B, 0.94, 5.1),
    rec("l2", C, 0.96, 5.1),
]


def test_relative_ratios_subtract_the_group_mean():
    rel = relative_ratios(HISTORY)
    assert rel["s1"] == {A.pipeline_key(): pytest.approx(-0.05), B.pipeline_key(): pytest.approx(0.05)}
    assert rel["l2"][C.pipeline_key()] == pytest.approx(0.96 - 0.95)


def test_fixed_default_is_the_best_mean_relative_ratio():
    fd = FixedDefaultRecommender().fit(HISTORY)
    # group means: s1 .55, s2 .75, l1 .98, l2 .95
    # B: (+0.05 + 0.05 - 0.01 - 0.01) / (4 + 1); A: (-0.05 - 0.05 + 0.01 + 0) / 5; C: 0.01 / (1 + 1)
    assert fd.scores_[B.pipeline_key()] == pytest.approx(0.08 / 5)
    assert fd.scores_[A.pipeline_key()] == pytest.approx(-0.09 / 5)
    assert fd.scores_[C.pipeline_key()] == pytest.approx(0.005)
    assert fd.default_config_ == B
    new = [rec("x", A, 0.0, 4.0), rec("x", B, 0.0, 4.0), rec("x", KDConfig(), 0.0, 4.0)]
    np.testing.assert_allclose(fd.predict(new), [-0.018, 0.016, 0.0])  # an unseen pipeline scores 0


def test_nearest_datasets_follow_the_similar_datasets():
    knn = NearestDatasetsRecommender(n_neighbors=2).fit(HISTORY)
    small = knn.predict([rec("new", A, 0.0, 2.9), rec("new", B, 0.0, 2.9)])
    large = knn.predict([rec("new2", A, 0.0, 5.2), rec("new2", B, 0.0, 5.2)])
    assert small[1] > small[0] and large[0] > large[1]
    assert small[1] == pytest.approx(0.05)  # mean over s1, s2
    assert large[0] == pytest.approx((0.0 + 0.01) / 2)  # l2 (closest) then l1


def test_baseline_parameter_errors():
    with pytest.raises(ValueError, match="smoothing"):
        FixedDefaultRecommender(smoothing=-1).fit(HISTORY)
    with pytest.raises(ValueError, match="n_neighbors"):
        NearestDatasetsRecommender(n_neighbors=0).fit(HISTORY)
