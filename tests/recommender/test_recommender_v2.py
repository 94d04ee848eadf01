"""Recommender v2: source tasks, conformal intervals, the portfolio, and the nested evaluation's
guarantees (no leak of the reported fold; coverage measured on held-out runs only)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from models.config import KDConfig
from recommender import MetaLearner
from recommender import nested as nested_mod
from recommender.conformal import out_of_fold, weighted_quantile
from recommender.explain import CandidateTable
from recommender.nested import LeakError, evaluate_fold, nested_evaluation, random_best_of
from recommender.portfolio import correlated_noise, greedy_portfolio, noise_bank, shortlist
from recommender.tasks import source_task
from tests.recommender.conftest import FAST
from tests.recommender.synthetic import STUDENTS, TEACHERS

GRID = ({"target": "relative"},)


class SpyLearner(MetaLearner):
    """Records the datasets of every fit (class-level, clones share it)."""

    fits: list[set[str]] = []

    def fit(self, records, y=None):
        SpyLearner.fits.append({r.dataset_id for r in records})
        return super().fit(records, y)


def test_source_task_groups_sizes_and_same_text_tasks():
    assert source_task("rotten_tomatoes@250:cd6641973190") == source_task("rt_polarity_200")
    assert source_task("tweet_sentiment@600") == source_task("tweet_confidence@250") == "tweets"
    assert source_task("bbc_pair@500") == source_task("bbc_news@250:ffd7") == "bbc"
    assert (
        source_task("tweet_polarity@1000") == "tweets" and source_task("spam_assassin@500") == "spam_assassin"
    )
    assert source_task("sotu_party@1000") == source_task("sotu_year") == "sotu"
    assert source_task("imdb_1000") == "imdb" and source_task("syn-3") == "syn-3"


def test_weighted_quantile_and_out_of_fold_predictions_never_see_their_unit(history):
    assert weighted_quantile(np.array([3.0, 1.0, 2.0]), np.ones(3), 0.5) == 2.0
    SpyLearner.fits = []
    template = SpyLearner(**FAST, calibration="none")
    pred, held = out_of_fold(template, history, unit="dataset")
    datasets = [r.dataset_id for r in history]
    assert held.all() and len(SpyLearner.fits) == len(set(datasets))
    for seen in SpyLearner.fits:  # each fit lacks exactly the dataset it then predicts
        assert len(set(datasets) - seen) == 1


def test_intervals_hold_the_point_and_stay_plausible(history):
    m = MetaLearner(**FAST, calibration="dataset").fit(history)
    assert m.calibrated_ and m.interval_offsets_[0] <= 0.0 <= m.interval_offsets_[1]
    point, lower, upper = m.predict_interval(history[:40])
    assert np.all(lower <= point) and np.all(point <= upper) and np.all(lower >= 0.0)
    ceiling = max(1.0, max(r.ratio for r in history))
    assert np.all(upper <= ceiling + 1e-12)
    out = m.recommend(dict(history[0].meta_features), TEACHERS[0], STUDENTS[0], k=3)
    assert all(r.interval[0] <= r.predicted_ratio <= r.interval[1] for r in out)
    assert all(r.interval_coverage == 0.8 for r in out)


@pytest.mark.parametrize("k", [1, 3, 7, 15])
def test_portfolio_never_repeats_a_pipeline(history, k):
    m = MetaLearner(**FAST, calibration="none").fit(history)
    for r in history[:: len(history) // 4]:
        out = m.recommend(dict(r.meta_features), r.teacher, r.student, k=k)
        keys = [o.kd_config.pipeline_key() for o in out]
        assert len(keys) == k == len(set(keys))
        assert all(b >= a - 1e-12 for a, b in zip(
            [o.expected_best_of_k for o in out], [o.expected_best_of_k for o in out][1:], strict=False
        ))  # fmt: skip


def _table():
    configs = [
        KDConfig.model_validate(
            {"intermediate": {"loss": loss}, "augmentation": {"pipeline": aug, "aug_p": p}}
        )
        for loss in ("mse", "cos")
        for aug, p in ((["random"], 0.1), (["random"], 0.3), ([], 0.1))
    ]
    return CandidateTable.build(configs)


def test_greedy_portfolio_diversifies_when_unsure_and_follows_predictions_when_sure():
    table = _table()  # 0-2: mse with aug p .1 / aug p .3 / none; 3-5 the same with cos
    pred = np.array([0.90, 0.899, 0.85, 0.898, 0.85, 0.85])
    idx = np.arange(len(pred))
    bank = noise_bank(5, 256, 0)
    unsure, _ = greedy_portfolio(pred, correlated_noise(bank, table, idx, 0.05), 2, 1.0)
    sure, _ = greedy_portfolio(pred, correlated_noise(bank, table, idx, 1e-5), 2, 1.0)
    assert unsure.tolist() == [0, 3]  # a second intermediate loss, not the aug_p near-copy
    assert sure.tolist() == [0, 1]  # confident: the two best predictions


def test_random_best_of_is_the_exact_expectation():
    real = np.array([0.5, 0.7, 0.9, 1.0])
    rng = np.random.default_rng(0)
    draws = [real[rng.choice(4, 2, replace=False)].max() for _ in range(20000)]
    assert random_best_of(real, 2) == pytest.approx(np.mean(draws), abs=0.01)


def test_nested_evaluation_never_fits_on_the_reported_fold(history):
    SpyLearner.fits = []
    result = nested_evaluation(history, learner=SpyLearner(**FAST), grid=GRID)
    assert {g["dataset"] for g in result["groups"]} == {r.dataset_id for r in history}
    for fold in result["folds"]:
        held = set(fold["datasets"])
        assert held  # every fit made while this fold was reported lacks its datasets
    assert SpyLearner.fits and all(
        len(seen) < len({r.dataset_id for r in history}) for seen in SpyLearner.fits
    )
    ml = result["methods"]["meta_learner"]
    assert set(ml) >= {"top1", "best_of_3", "regret_points", "spearman", "coverage"}
    lo, hi = ml["top1"]["ci90"]
    assert lo <= ml["top1"]["mean"] <= hi
    assert set(result["methods"]) == set(nested_mod.METHODS)


def test_coverage_is_computed_on_held_out_runs_only(history):
    SpyLearner.fits = []
    test = [r for r in history if r.dataset_id == "syn-0"]
    train = [r for r in history if r.dataset_id != "syn-0"]
    _, rows = evaluate_fold(SpyLearner(**FAST), train, test, grid=GRID)
    assert rows and all(
        row["dataset"] == "syn-0" and 0.0 <= row["meta_learner"]["coverage"] <= 1.0 for row in rows
    )
    assert all("syn-0" not in seen for seen in SpyLearner.fits)
    assert sum(row["n_runs"] for row in rows) == len(test)


def test_a_planted_leak_is_caught(history, monkeypatch):
    real_folds = nested_mod.source_task_folds

    def leaky(records):  # one held-out run slipped into every training fold
        return [(t, [*train, test[0]], test) for t, train, test in real_folds(records)]

    monkeypatch.setattr(nested_mod, "source_task_folds", leaky)
    with pytest.raises(LeakError, match="held-out source task"):
        nested_evaluation(history, learner=MetaLearner(**FAST), grid=GRID)
    monkeypatch.undo()
    # a renamed size variant of a held-out dataset is the same source task: caught too
    test = [r for r in history if r.dataset_id == "syn-0"]
    twin = [dataclasses.replace(r, dataset_id="syn-0@999") for r in test[:5]]
    train = [r for r in history if r.dataset_id != "syn-0"] + twin
    with pytest.raises(LeakError):
        evaluate_fold(MetaLearner(**FAST), train, test, grid=GRID)


def test_shortlist_offers_the_best_of_every_component_value(history):
    m = MetaLearner(**FAST, calibration="none").fit(history)
    r = history[0]
    table, partial = m.candidate_table(r.teacher, r.student, "classification")
    pred = partial.predict(m.feature_space_.context_vector(dict(r.meta_features), r.teacher, r.student))
    short = shortlist(pred, table, 3)
    assert len(set(short.tolist())) == short.size and pred[short[0]] == pred.max()
    for codes in table.value_codes[:-1]:
        for v in np.unique(codes):
            idx = np.flatnonzero(codes == v)
            assert idx[np.argmax(pred[idx])] in set(short.tolist())


def test_a_ratio_above_one_needs_history_of_students_beating_their_teacher(history):
    # only the dataset syn-4 ever had a student beat its teacher (1.05 everywhere there)
    lifted = [dataclasses.replace(r, ratio=1.05) if r.dataset_id == "syn-4" else r for r in history]
    m = MetaLearner(**FAST, calibration="none", n_neighbors=1).fit(lifted)
    near_4 = next(r for r in lifted if r.dataset_id == "syn-4")
    near_0 = next(r for r in lifted if r.dataset_id == "syn-0")
    assert m.ceiling(near_4.meta_features) == pytest.approx(1.05)
    assert m.ceiling(near_0.meta_features) == 1.0
    for r in (near_0, near_4):
        out = m.recommend(dict(r.meta_features), r.teacher, r.student, k=3)
        assert all(
            o.predicted_ratio <= m.ceiling(r.meta_features) and o.interval[1] <= m.ceiling(r.meta_features)
            for o in out
        )


def test_an_imported_history_trains_but_is_never_tested(history):
    from recommender.distiller_import import read_distiller_table
    from tests.recommender.conftest import FIXTURES

    imported = [r for r in read_distiller_table(FIXTURES / "distiller_table.csv") if r.kd_config is not None]
    SpyLearner.fits = []
    result = nested_evaluation(history[:120], learner=SpyLearner(**FAST), grid=GRID, extra_train=imported)
    assert result["n_extra_train"] == len(imported) > 0
    assert {g["dataset"] for g in result["groups"]} <= {r.dataset_id for r in history}
    imported_ids = {r.dataset_id for r in imported}
    assert any(imported_ids <= seen for seen in SpyLearner.fits)  # mixed into training
