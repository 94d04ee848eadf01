"""Every meta-feature against values computed by hand."""

from __future__ import annotations

import math
from types import MappingProxyType

import numpy as np
import pytest

from models.config import ModelDescriptor
from models.data import Example, TextDataset
from models.errors import DatasetError
from recommender import compute_meta_features
from recommender.meta_features import (
    PROJECTION_SEED,
    embedding_summary,
    label_features,
    length_features,
    projection_matrix,
    sample_indices,
    size_features,
    task_features,
    teacher_features,
    type_token_ratio,
    unk_rate_feature,
)

TEXTS = ["a b c", "A a", "b c d e", "x"]
LABELS = ["neg", "pos", "pos", "pos"]


def dataset(texts=TEXTS, labels=LABELS, pairs=None, kind="classification", names=("neg", "pos")):
    train = tuple(
        Example(t, None if pairs is None else pairs[i], lab)
        for i, (t, lab) in enumerate(zip(texts, labels, strict=True))
    )
    return TextDataset(
        name="hand",
        task_kind=kind,
        is_pair=pairs is not None,
        label_names=names if kind == "classification" else (),
        train=train,
        dev=train[:1],
    )


def test_size_features():
    assert size_features(1000) == {"n_train": 1000.0, "log_n_train": 3.0}
    with pytest.raises(DatasetError, match="empty"):
        size_features(0)


def test_task_features():
    assert task_features("regression", True) == {"is_regression": 1.0, "is_pair": 1.0}
    assert task_features("classification", False) == {"is_regression": 0.0, "is_pair": 0.0}
    with pytest.raises(DatasetError, match="task_kind"):
        task_features("ranking", False)


def test_label_features_by_hand():
    out = label_features(LABELS, "classification", ("neg", "pos"))
    # p = (1/4, 3/4): H = -(0.25 log2 0.25 + 0.75 log2 0.75) = 0.5 + 0.3112781
    assert out["label_entropy"] == pytest.approx(0.8112781245)
    assert out["label_imbalance"] == pytest.approx(3.0)
    assert out["n_labels"] == 2.0
    # a class named but never seen counts toward n_labels only
    assert label_features(LABELS, "classification", ("neg", "pos", "meh"))["n_labels"] == 3.0
    uniform = label_features([0, 1, 2, 3], "classification")
    assert uniform["label_entropy"] == pytest.approx(2.0) and uniform["label_imbalance"] == 1.0
    assert label_features([0.5, 1.5], "regression") == {
        "n_labels": 1.0,
        "label_entropy": None,
        "label_imbalance": None,
    }


def test_length_features_by_hand():
    out = length_features([t.split() for t in TEXTS], student_tokens=False)
    # lengths 3, 2, 4, 1: mean 2.5, median 2.5, p90 = 3 + 0.7 * (4 - 3) (linear interpolation)
    assert out == {
        "len_mean": 2.5,
        "len_p50": 2.5,
        "len_p90": pytest.approx(3.7),
        "len_in_student_tokens": 0.0,
    }


def test_type_token_ratio_by_hand():
    # 10 tokens; distinct lower-cased: a b c d e x = 6
    assert type_token_ratio([t.split() for t in TEXTS]) == {"type_token_ratio": 0.6}
    assert type_token_ratio([[], []]) == {"type_token_ratio": None}


def test_unk_rate_feature():
    assert unk_rate_feature(TEXTS, None) == {"unk_rate": None}
    assert unk_rate_feature(TEXTS, lambda texts: 0.25) == {"unk_rate": 0.25}
    with pytest.raises(ValueError, match="fraction"):
        unk_rate_feature(TEXTS, lambda texts: 3.0)


def test_projection_is_fixed_and_seeded():
    p = projection_matrix(3)
    expected = np.random.default_rng(PROJECTION_SEED).standard_normal((3, 8)) / math.sqrt(3)
    np.testing.assert_array_equal(p, expected)
    np.testing.assert_array_equal(p, projection_matrix(3))


def test_embedding_summary_by_hand():
    def embed(texts):  # (n, 3): length, 1, number of spaces
        return np.array([[len(t), 1.0, t.count(" ")] for t in texts])

    out = embedding_summary(TEXTS, embed)
    mean = np.array([(5 + 3 + 7 + 1) / 4, 1.0, (2 + 1 + 3 + 0) / 4])
    expected = mean @ (np.random.default_rng(PROJECTION_SEED).standard_normal((3, 8)) / math.sqrt(3))
    assert [out[f"emb_{i}"] for i in range(8)] == pytest.approx(expected.tolist())
    assert embedding_summary(TEXTS, None) == {f"emb_{i}": None for i in range(8)}
    with pytest.raises(ValueError, match="shape"):
        embedding_summary(TEXTS, lambda texts: np.zeros((1, 3)))


def test_teacher_features():
    t = ModelDescriptor("t", num_layers=6, hidden_size=384, num_params=22_700_000)
    assert teacher_features(t, 0.9) == {
        "teacher_layers": 6.0,
        "teacher_hidden": 384.0,
        "teacher_params": 22_700_000.0,
        "teacher_score": 0.9,
    }
    assert teacher_features(ModelDescriptor("unknown"), None) == dict.fromkeys(
        ("teacher_layers", "teacher_hidden", "teacher_params", "teacher_score")
    )


def test_sample_indices_is_bounded_seeded_and_sorted():
    assert sample_indices(5, 10, 0).tolist() == [0, 1, 2, 3, 4]
    idx = sample_indices(1000, 50, 7)
    assert len(idx) == 50 == len(set(idx.tolist())) and (np.diff(idx) > 0).all()
    assert idx.tolist() == sample_indices(1000, 50, 7).tolist()


def test_compute_meta_features_whole():
    def chars(texts):  # "student tokens": characters without spaces
        return [list(t.replace(" ", "")) for t in texts]

    teacher = ModelDescriptor("t", num_layers=6, hidden_size=384, num_params=22_700_000)
    out = compute_meta_features(
        dataset(), tokenize=chars, unk_rate=lambda texts: 0.1, teacher=teacher, teacher_score=0.88
    )
    assert isinstance(out, MappingProxyType)
    with pytest.raises(TypeError):
        out["n_train"] = 1.0
    assert out["n_train"] == 4.0 and out["n_labels"] == 2.0 and out["is_pair"] == 0.0
    assert out["len_mean"] == 2.5 and out["len_in_student_tokens"] == 1.0  # 3, 2, 4, 1 characters
    assert out["type_token_ratio"] == pytest.approx(0.6)
    assert out["unk_rate"] == 0.1 and out["teacher_score"] == 0.88 and out["teacher_layers"] == 6.0
    assert out["emb_0"] is None  # no encoder given: missing stays missing
    assert all(v is None or isinstance(v, float) for v in out.values())
    assert compute_meta_features(dataset()) is not compute_meta_features(dataset())  # fresh each call


def test_pairs_are_measured_together_and_regression():
    ds = dataset(texts=["a b", "c"], labels=[0.5, 1.5], pairs=["d", "e f g"], kind="regression")
    out = compute_meta_features(ds)
    assert out["len_mean"] == 3.5 and out["is_pair"] == 1.0  # "a b d" = 3, "c e f g" = 4
    assert out["is_regression"] == 1.0 and out["n_labels"] == 1.0 and out["label_entropy"] is None


def test_text_features_use_a_bounded_sample():
    texts = [" ".join(["w"] * (i % 7 + 1)) for i in range(500)]
    ds = dataset(texts=texts, labels=["neg", "pos"] * 250)
    seen = []

    def tokenize(batch):
        seen.append(len(batch))
        return [t.split() for t in batch]

    out = compute_meta_features(ds, tokenize=tokenize, max_sample=40, seed=3)
    assert seen == [40] and out["n_train"] == 500.0  # sizes and labels still use every example
    assert out["label_imbalance"] == 1.0
    with pytest.raises(ValueError, match="max_sample"):
        compute_meta_features(ds, max_sample=0)
