"""Evaluation arithmetic on constructed histories where the right answer is known."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.base import BaseEstimator

from models.config import KDConfig
from recommender import MetaLearner, SweepRecord, heldout_evaluation, leave_one_dataset_out, plot_evaluation
from tests.recommender.conftest import FAST
from tests.recommender.synthetic import STUDENTS, TEACHERS

CONFIGS = [
    KDConfig.model_validate({"intermediate": {"loss": loss}, "mixup": {"enabled": m}})
    for loss in ("none", "mse", "cos")
    for m in (False, True)
]  # 6 pipelines


class Oracle(BaseEstimator):
    """Predicts each record's true score times ``sign`` (sign=-1 always picks the worst)."""

    def __init__(self, sign: float = 1.0) -> None:
        self.sign = sign

    def fit(self, records, y=None):
        self.fitted_ = True
        return self

    def predict(self, records):
        return np.array([self.sign * r.student_score for r in records])


def rec(dataset, config, score, student=STUDENTS[0]):
    return SweepRecord(
        dataset_id=dataset,
        teacher=TEACHERS[0],
        student=student,
        kd_config=config,
        student_score=score,
        teacher_score=1.0,
        meta_features={"n_train": 100.0},
    )


SCORES = {"a": [0.5, 0.6, 0.7, 0.8, 0.9, 1.0], "b": [0.2, 0.4, 0.4, 0.4, 0.4, 0.4]}
HISTORY = [rec(d, c, s) for d, scores in SCORES.items() for c, s in zip(CONFIGS, scores, strict=True)]
HISTORY += [rec("a", CONFIGS[5], 0.8)]  # a repeat: pipeline 5 on "a" averages to 0.9
HISTORY += [rec("c", c, 0.5, STUDENTS[1]) for c in CONFIGS[:3]]  # too few pipelines: skipped
HISTORY += [rec("d", c, s) for c, s in zip(CONFIGS, [0.0, -0.1, 0.0, -0.2, 0.0, 0.0], strict=True)]


def test_pick_quality_arithmetic():
    result = leave_one_dataset_out(HISTORY, methods={"oracle": Oracle(), "worst": Oracle(-1.0)})
    groups = {g["dataset"]: g for g in result["groups"]}
    assert set(groups) == {"a", "b"}
    # "a": pipeline means 0.5 .6 .7 .8 .9 .9 -> best 0.9; worst pick 0.5
    assert groups["a"]["best_score"] == pytest.approx(0.9) and groups["a"]["n_runs"] == 7
    assert groups["a"]["oracle"] == pytest.approx(1.0) and groups["a"]["worst"] == pytest.approx(0.5 / 0.9)
    assert groups["a"]["random"] == pytest.approx(np.mean([0.5, 0.6, 0.7, 0.8, 0.9, 0.9]) / 0.9)
    assert groups["b"]["worst"] == pytest.approx(0.5) and groups["b"]["random"] == pytest.approx(
        2.2 / 6 / 0.4
    )
    assert result["summary"]["worst"] == pytest.approx((0.5 / 0.9 + 0.5) / 2)
    assert result["summary"]["oracle"] == 1.0
    reasons = {s["dataset"]: s["reason"] for s in result["skipped"]}
    assert "fewer than 5 pipelines" in reasons["c"] and "best score <= 0" in reasons["d"]
    json.dumps(result, allow_nan=False)


def test_ties_go_to_the_first_pipeline():
    tie = [rec("t", c, s) for c, s in zip(CONFIGS, [0.3, 0.9, 0.3, 0.3, 0.9, 0.3], strict=True)]
    result = leave_one_dataset_out([*tie, *HISTORY[:6]], methods={"flat": Oracle(0.0)})
    assert {g["dataset"]: g["flat"] for g in result["groups"]}["t"] == pytest.approx(0.3 / 0.9)


def test_loo_with_the_real_methods(history):
    result = leave_one_dataset_out(history, learner=MetaLearner(**FAST), min_configs=5)
    assert result["n_datasets"] == 5 and result["n_groups"] > 0
    assert set(result["summary"]) == {"meta_learner", "fixed_default", "nearest_datasets", "random"}
    for g in result["groups"]:
        for name in result["summary"]:
            assert 0.0 < g[name] <= 1.0 + 1e-12


def test_loo_input_errors():
    with pytest.raises(ValueError, match="at least two datasets"):
        leave_one_dataset_out(HISTORY[:6])
    with pytest.raises(ValueError, match="min_configs"):
        leave_one_dataset_out(HISTORY, min_configs=1)


def test_heldout_top_k_versus_random():
    train = [r for r in HISTORY if r.dataset_id == "b"]
    test = [r for r in HISTORY if r.dataset_id == "a"]
    result = heldout_evaluation(train, test, learner=Oracle(), k=2)
    (group,) = result["groups"]
    assert group["top_k_mean"] == pytest.approx(0.9)  # the two best pipelines average 0.9
    assert group["random_k_expected"] == pytest.approx(np.mean([0.5, 0.6, 0.7, 0.8, 0.9, 0.9]))
    assert group["best_score"] == pytest.approx(0.9)
    assert 0.5 <= group["random_k_draw"] <= 0.9
    with pytest.raises(ValueError, match="share datasets"):
        heldout_evaluation(test, test, learner=Oracle())
    assert heldout_evaluation(train, test, learner=Oracle(), k=6)["skipped"][0]["reason"].startswith(
        "needs more"
    )


def test_plot_is_written(tmp_path):
    result = leave_one_dataset_out(HISTORY, methods={"oracle": Oracle(), "worst": Oracle(-1.0)})
    path = plot_evaluation(result, tmp_path / "loo.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
