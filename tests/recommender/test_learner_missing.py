"""MetaLearner.fit on histories with all-missing feature columns and on a single record.

scikit-learn's histogram binning raises "window shape cannot be larger than input array shape"
for a column with no known value; the learner must fit anyway, and predict/recommend must treat
such a column the same way whatever value a later row holds there.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from models.config import KDConfig, ModelDescriptor
from recommender import MetaLearner, SweepRecord, read_records, write_records
from tests.recommender.conftest import FAST
from tests.recommender.synthetic import ALL_AVAILABLE

# Descriptors without tokenizer or family: same_tokenizer / same_family are missing in every row.
TEACHER = ModelDescriptor("t", None, 6, 384, 22_700_000, 12, None)
STUDENT = ModelDescriptor("s", None, 2, 384, 11_000_000, 12, None)
NO_MI = [
    KDConfig.model_validate({"intermediate": {"loss": loss, "strategy": strategy}, "mixup": {"enabled": mix}})
    for loss in ("none", "mse", "pkd")
    for strategy in ("skip", "last")
    for mix in (False, True)
    if not (loss == "none" and strategy == "last")
]


def _records(n_datasets: int = 3) -> list[SweepRecord]:
    out = []
    for d in range(n_datasets):
        for i, config in enumerate(NO_MI):
            out.append(
                SweepRecord(
                    dataset_id=f"d{d}",
                    teacher=TEACHER,
                    student=STUDENT,
                    kd_config=config,
                    student_score=0.7 + 0.01 * i + 0.02 * d,
                    teacher_score=0.9,
                    meta_features={"n_train": 100.0 * (d + 1), "is_regression": 0.0, "emb_0": None},
                )
            )
    return out


def test_fit_without_any_mi_run_or_tokenizer_ids():
    records = _records()
    learner = MetaLearner(**FAST).fit(records)
    X = learner.feature_space_.matrix(records)
    names = learner.feature_space_.names
    for name in ("mi_alpha", "same_tokenizer", "same_family"):
        assert np.isnan(X[:, names.index(name)]).all()  # the situation that used to crash
    assert "emb_0" not in names  # a meta-feature never known is not a column at all
    assert np.isfinite(learner.predict(records)).all()
    out = learner.recommend(records[0].meta_features, TEACHER, STUDENT, k=3, task_kind="classification")
    assert len(out) == 3 and all(np.isfinite(r.predicted_ratio) for r in out)


def test_a_column_unknown_at_fit_time_does_not_change_predictions():
    records = _records()
    learner = MetaLearner(**FAST).fit(records)
    named = ModelDescriptor("t", "bert", 6, 384, 22_700_000, 12, "vocab")
    known = [
        dataclasses.replace(
            r, teacher=named, student=dataclasses.replace(STUDENT, tokenizer_id="vocab", family="bert")
        )
        for r in records
    ]
    np.testing.assert_allclose(learner.predict(known), learner.predict(records))
    mi = KDConfig.model_validate({"intermediate": {"loss": "mi", "alpha": 0.9}})
    pred = learner.predict([dataclasses.replace(records[0], kd_config=mi)])
    assert np.isfinite(pred).all()


@pytest.mark.parametrize("target", ["relative", "ratio"])
def test_single_record_fits_and_predicts_its_ratio(target):
    record = _records(1)[3]
    learner = MetaLearner(target=target, availability=ALL_AVAILABLE).fit([record])
    assert learner.n_records_ == 1
    assert learner.predict([record])[0] == pytest.approx(record.ratio)
    out = learner.recommend(record.meta_features, TEACHER, STUDENT, k=2, task_kind="classification")
    assert [r.predicted_ratio for r in out] == pytest.approx([record.ratio] * 2)
    assert learner.nearest_datasets(record.meta_features) == [("d0", pytest.approx(0.0))]


def test_records_read_back_from_parquet_fit_the_same(tmp_path):
    records = _records(2)
    path = write_records(records, tmp_path / "r.parquet")
    a = MetaLearner(**FAST).fit(records).predict(records)
    b = MetaLearner(**FAST).fit(read_records(path)).predict(records)
    np.testing.assert_allclose(a, b)


def test_empty_history_is_a_clear_error():
    with pytest.raises(ValueError, match="records is empty"):
        MetaLearner(**FAST).fit([])
