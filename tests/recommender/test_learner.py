"""MetaLearner: the scikit-learn estimator contract, robustness, and recommend()."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from models.availability import runnable
from models.config import KDConfig, ModelDescriptor, check_compatible
from recommender import MetaLearner, Recommendation, SweepRecord
from recommender.learner import _top, dataset_weights
from tests.recommender.conftest import FAST
from tests.recommender.synthetic import ALL_AVAILABLE, STUDENTS, TEACHERS, synthetic_history


@pytest.fixture(scope="module")
def fitted(history):
    return MetaLearner(**FAST).fit(history)


def test_init_stores_params_only_and_clone_works():
    m = MetaLearner(target="ratio", max_iter=7)
    assert m.get_params()["max_iter"] == 7 and m.get_params()["target"] == "ratio"
    assert not [k for k in vars(m) if k.endswith("_")]
    c = clone(m)
    assert c.get_params() == m.get_params() and c is not m


def test_fit_returns_self_and_sets_underscore_state(history):
    m = MetaLearner(**FAST)
    assert m.fit(history) is m
    assert m.n_features_in_ == len(m.feature_names_in_) and m.n_records_ == len(history)
    assert {"n_train", "emb_0", "student_layers", "inter=mi", "aug_pos=random"} <= set(m.feature_names_in_)


def test_predict_order_and_shape(fitted, history):
    sample = history[:30]
    pred = fitted.predict(sample)
    assert pred.shape == (30,)
    np.testing.assert_allclose(fitted.predict(sample[::-1]), pred[::-1])
    ratios = np.array([r.ratio for r in history])
    assert np.corrcoef(fitted.predict(history), ratios)[0, 1] > 0.9


def test_unfitted_and_bad_inputs_raise_clear_errors(history, fitted):
    with pytest.raises(NotFittedError):
        MetaLearner().predict(history[:2])
    with pytest.raises(ValueError, match="records is empty"):
        MetaLearner(**FAST).fit([])
    with pytest.raises(TypeError, match=r"records\[0\] is a dict"):
        MetaLearner(**FAST).fit([history[0].to_dict()])
    no_ratio = dataclasses.replace(history[0], ratio=None, student_score=None)
    with pytest.raises(ValueError, match=r"records\[1\] .* has no finite ratio"):
        MetaLearner(**FAST).fit([history[1], no_ratio])
    for params, msg in (
        ({"target": "rank"}, "target must be"),
        ({"coverage": 1.5}, "coverage"),
        ({"calibration": "rows"}, "calibration"),
        ({"weighting": "x"}, "weighting"),
    ):
        with pytest.raises(ValueError, match=msg):
            MetaLearner(**params).fit(history)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        fitted.recommend(history[0].meta_features, TEACHERS[0], STUDENTS[0], k=0)


def test_dataset_weights_equalise_unequal_datasets(history):
    w = dataset_weights(history)
    for d in {r.dataset_id for r in history}:
        assert w[[r.dataset_id == d for r in history]].sum() == pytest.approx(1.0)


def test_missing_features_and_unseen_names_still_predict(fitted, history):
    r = history[0]
    stranger = ModelDescriptor("never-seen-student", "bert", 3, 256, 9_000_000, 4, "vocab-z")
    bare = dataclasses.replace(
        r, meta_features={"n_train": 500.0}, student=stranger, teacher=ModelDescriptor("never-seen-teacher")
    )
    pred = fitted.predict([bare, r])
    assert np.isfinite(pred).all()


def test_recommend_returns_valid_runnable_configs_with_intervals(fitted, history):
    meta = dict(history[0].meta_features)
    out = fitted.recommend(meta, TEACHERS[0], STUDENTS[1], k=4)
    assert len(out) == 4 and all(isinstance(r, Recommendation) for r in out)
    preds = [r.predicted_ratio for r in out]
    assert preds[0] == max(preds)  # the first pick is the best predicted; the rest a portfolio
    expected = [r.expected_best_of_k for r in out]
    assert expected == sorted(expected) and expected[0] == pytest.approx(preds[0])
    kind = "regression" if meta["is_regression"] else "classification"
    for rec in out:
        assert isinstance(rec.kd_config, KDConfig) and runnable(rec.kd_config, ALL_AVAILABLE)
        check_compatible(rec.kd_config, task_kind=kind, teacher=TEACHERS[0], student=STUDENTS[1])
        lo, hi = rec.interval
        assert lo <= rec.predicted_ratio <= hi and hi - lo < 0.5
        ex = rec.explanation
        nearest = ex["nearest_datasets"][0]
        assert nearest["dataset"] == history[0].dataset_id.split(":")[0] and nearest["similarity"] == 1.0
        assert all(0.0 <= n["similarity"] <= 1.0 for n in ex["nearest_datasets"])
        assert nearest["best_pipeline"] and nearest["best_ratio"] is not None
        assert ex["drivers"] and all(isinstance(d["effect"], float) and d["text"] for d in ex["drivers"])
        assert ex["alternatives"] and all("predicted_ratio" in a for a in ex["alternatives"])
        assert "predicted ratio" in ex["text"]
    assert len({r.kd_config.pipeline_key() for r in out}) == 4
    assert out[0].to_dict()["kd_config"]["intermediate"]["loss"] == out[0].kd_config.intermediate.loss


def test_recommend_matches_predict_and_ranks_given_candidates(fitted, history):
    group = [r for r in history if r.group_key == history[0].group_key]
    configs = [r.kd_config for r in group]
    out = fitted.recommend(
        group[0].meta_features, group[0].teacher, group[0].student, k=len(configs), candidates=configs
    )
    pred = fitted.predict(group)
    best = int(np.argmax(pred))
    assert out[0].kd_config == configs[best]
    assert out[0].predicted_ratio == pytest.approx(pred[best], abs=1e-9)
    assert sorted(r.predicted_ratio for r in out) == pytest.approx(sorted(pred), abs=1e-9)


def test_recommend_regression_and_task_kind_inference(fitted):
    meta = {"n_train": 3000.0, "is_regression": 1.0, "is_pair": 1.0}
    out = fitted.recommend(meta, TEACHERS[0], STUDENTS[0], k=3)
    assert {r.kd_config.prediction.loss for r in out} == {"mse"}
    with pytest.raises(ValueError, match="task_kind is needed"):
        fitted.recommend({"n_train": 10.0}, TEACHERS[0], STUDENTS[0])
    stranger = ModelDescriptor("new-teacher", "bert", 8, 512, 40_000_000, 8, "synthetic-wordpiece")
    assert len(fitted.recommend(meta, stranger, STUDENTS[0], k=2, task_kind="regression")) == 2


def test_candidate_tables_are_reused(fitted, history):
    meta = history[0].meta_features
    fitted.recommend(meta, TEACHERS[0], STUDENTS[2], k=1, task_kind="classification")
    table = fitted.candidate_table(TEACHERS[0], STUDENTS[2], "classification")
    fitted.recommend(meta, TEACHERS[0], STUDENTS[2], k=1, task_kind="classification")
    assert fitted.candidate_table(TEACHERS[0], STUDENTS[2], "classification") is table


def test_learns_the_constructed_rule():
    """Constructed history: mixup on beats off by 0.02 everywhere; nothing else matters."""
    teacher, student = TEACHERS[0], STUDENTS[1]
    configs = [
        KDConfig.model_validate({"mixup": {"enabled": m}, "intermediate": {"loss": loss}})
        for m in (False, True)
        for loss in ("none", "mse", "cos")
    ]
    records = [
        SweepRecord(
            dataset_id=f"d{d}",
            teacher=teacher,
            student=student,
            kd_config=c,
            student_score=None,
            ratio=0.9 + 0.01 * d + (0.02 if c.mixup.enabled else 0.0),
            meta_features={"n_train": 1000.0 * (d + 1), "is_regression": 0.0},
        )
        for d in range(6)
        for c in configs
    ]
    m = MetaLearner(max_iter=50, min_samples_leaf=2, availability=ALL_AVAILABLE).fit(records)
    out = m.recommend({"n_train": 3500.0, "is_regression": 0.0}, teacher, student, k=3, candidates=configs)
    assert all(r.kd_config.mixup.enabled for r in out)
    top = out[0].explanation["drivers"]
    assert top[0]["choice"] == "mixup" and top[0]["effect"] == pytest.approx(0.02, abs=0.005)


def test_ratio_target_also_works():
    records = synthetic_history(3, runs_per_group=(5, 9), seed=4)
    m = MetaLearner(target="ratio", **FAST).fit(records)
    assert not hasattr(m, "group_model_")
    assert len(m.recommend(records[0].meta_features, records[0].teacher, records[0].student, k=2)) == 2


@pytest.mark.parametrize("k", [1, 3, 7, 20, 25])
def test_top_k_equals_a_stable_sort_of_everything_ties_included(k):
    rng = np.random.default_rng(3)
    pred = rng.choice([0.1, 0.5, 0.5, 0.7, 0.9, 0.9, 0.9], size=20)  # many ties, also at the cut
    expected = np.argsort(-pred, kind="stable")[:k]
    np.testing.assert_array_equal(_top(pred, k), expected)
