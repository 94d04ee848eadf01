"""Meta-features with the real offline encoders (MiniLM-L6 tokenizer and, marked slow, its encoder)."""

from __future__ import annotations

import numpy as np
import pytest

from models.errors import AssetMissingError
from recommender import compute_meta_features


@pytest.fixture(scope="module")
def rt200():
    from models.data import load_builtin

    try:
        return load_builtin("rt_polarity_200")
    except AssetMissingError as exc:
        pytest.skip(f"built-in dataset not installed: {exc}")


@pytest.fixture(scope="module")
def minilm_tokenizer():
    from models.encoders import unk_rate_fn, word_tokenizer

    try:
        return word_tokenizer(), unk_rate_fn()
    except AssetMissingError as exc:
        pytest.skip(f"MiniLM-L6 not installed: {exc}")


def test_student_tokens_and_unk_rate_on_a_real_dataset(rt200, minilm_tokenizer):
    tokenize, unk_rate = minilm_tokenizer
    words = compute_meta_features(rt200)
    subwords = compute_meta_features(rt200, tokenize=tokenize, unk_rate=unk_rate)
    assert subwords["len_in_student_tokens"] == 1.0 and words["len_in_student_tokens"] == 0.0
    assert subwords["len_mean"] >= words["len_mean"]  # WordPiece splits words, never merges them
    assert 0.0 <= subwords["unk_rate"] < 0.05
    assert words["n_train"] == len(rt200.train) and words["label_entropy"] > 0.9


@pytest.mark.slow
def test_minilm_embedding_summary(rt200):
    from models.encoders import sentence_embedder

    out = compute_meta_features(rt200, embed=sentence_embedder(), max_sample=64)
    emb = np.array([out[f"emb_{i}"] for i in range(8)])
    assert np.isfinite(emb).all() and np.abs(emb).max() < 1.0  # normalised vectors, scaled projection
    again = compute_meta_features(rt200, embed=sentence_embedder(), max_sample=64)
    assert [again[f"emb_{i}"] for i in range(8)] == pytest.approx(emb.tolist(), abs=1e-5)
