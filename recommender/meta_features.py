"""Dataset meta-features: named, separately tested functions, bounded time on large data.

Each function returns a fresh ``dict[str, float | None]``; :func:`compute_meta_features` merges
them into a read-only mapping. Missing stays missing (None): a feature that needs an encoder that
was not given is None, never a guess. Text features are computed on a seeded sample of at most
``max_sample`` training examples; size and label features read every label (cheap).

The dataset is duck-typed on ``models.data.TextDataset``: ``train`` (a sequence of examples with
``text``, ``text_pair`` and ``label``), ``task_kind`` and ``is_pair``; ``label_names`` is optional.
Encoders are injected callables, so this module never imports torch.

Keys (stable snake_case): ``n_train``, ``log_n_train``, ``n_labels``, ``is_regression``,
``is_pair``, ``label_entropy`` (bits), ``label_imbalance`` (max / min class frequency),
``len_mean``, ``len_p50``, ``len_p90``, ``len_in_student_tokens`` (1 when ``tokenize`` was given,
0 for whitespace words), ``type_token_ratio``, ``unk_rate``, ``emb_0..emb_7``,
``teacher_layers``, ``teacher_hidden``, ``teacher_params``, ``teacher_score``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np

from models.config import ModelDescriptor
from models.errors import DatasetError

Tokenize = Callable[[list[str]], list[list[str]]]
UnkRate = Callable[[list[str]], float]
Embed = Callable[[list[str]], np.ndarray]

EMBEDDING_DIMS = 8
# The projection seed is part of the feature definition: changing it changes every emb_* value.
PROJECTION_SEED = 20210923


def size_features(n_train: int) -> dict[str, float | None]:
    """``n_train`` and ``log_n_train`` (base 10)."""
    if n_train < 1:
        raise DatasetError("the training split is empty")
    return {"n_train": float(n_train), "log_n_train": math.log10(n_train)}


def task_features(task_kind: str, is_pair: bool) -> dict[str, float | None]:
    """``is_regression`` and ``is_pair`` as 0/1."""
    if task_kind not in ("classification", "regression"):
        raise DatasetError(f"task_kind must be 'classification' or 'regression', got {task_kind!r}")
    return {"is_regression": float(task_kind == "regression"), "is_pair": float(bool(is_pair))}


def label_features(
    labels: Sequence[Any], task_kind: str, label_names: Sequence[str] | None = None
) -> dict[str, float | None]:
    """``n_labels``, ``label_entropy`` (bits) and ``label_imbalance`` (max/min class frequency).

    Regression counts as one output (``n_labels`` = 1, the paper's convention) with no entropy or
    imbalance. Classes named in ``label_names`` but absent from the data count toward
    ``n_labels`` only (an imbalance against a zero count would be infinite).
    """
    if task_kind == "regression":
        return {"n_labels": 1.0, "label_entropy": None, "label_imbalance": None}
    counts = Counter(labels)
    if not counts:
        raise DatasetError("cannot compute label features: no labels")
    freqs = np.array(sorted(counts.values()), dtype=float) / sum(counts.values())
    entropy = float(-(freqs * np.log2(freqs)).sum())
    n_labels = max(len(counts), len(label_names or ()))
    return {
        "n_labels": float(n_labels),
        "label_entropy": entropy,
        "label_imbalance": float(freqs.max() / freqs.min()),
    }


def length_features(token_lists: Sequence[Sequence[str]], *, student_tokens: bool) -> dict[str, float | None]:
    """Mean, median and 90th percentile of the example length, in the given token unit.

    Args:
        token_lists: One token list per example (pairs: both segments together).
        student_tokens: Whether the tokens come from the student's tokenizer (else words).
    """
    if not token_lists:
        raise DatasetError("cannot compute length features: no texts")
    lengths = np.array([len(t) for t in token_lists], dtype=float)
    return {
        "len_mean": float(lengths.mean()),
        "len_p50": float(np.percentile(lengths, 50)),
        "len_p90": float(np.percentile(lengths, 90)),
        "len_in_student_tokens": float(student_tokens),
    }


def type_token_ratio(token_lists: Sequence[Sequence[str]]) -> dict[str, float | None]:
    """Distinct lower-cased tokens / all tokens over the sample (None when there are no tokens).

    The ratio falls with sample size, so it is only comparable at equal ``max_sample``.
    """
    total = sum(len(t) for t in token_lists)
    if total == 0:
        return {"type_token_ratio": None}
    distinct = len({tok.lower() for toks in token_lists for tok in toks})
    return {"type_token_ratio": distinct / total}


def unk_rate_feature(texts: list[str], unk_rate: UnkRate | None) -> dict[str, float | None]:
    """Share of unknown tokens under the student's tokenizer (None without ``unk_rate``)."""
    if unk_rate is None:
        return {"unk_rate": None}
    rate = float(unk_rate(texts))
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"unk_rate callable returned {rate}, expected a fraction in [0, 1]")
    return {"unk_rate": rate}


def projection_matrix(dim: int, out_dims: int = EMBEDDING_DIMS) -> np.ndarray:
    """The fixed seeded Gaussian projection (dim, out_dims), scaled by 1/sqrt(dim)."""
    rng = np.random.default_rng(PROJECTION_SEED)
    return rng.standard_normal((dim, out_dims)) / math.sqrt(dim)


def embedding_summary(texts: list[str], embed: Embed | None) -> dict[str, float | None]:
    """``emb_0..emb_7``: the mean sentence embedding projected by :func:`projection_matrix`.

    Without ``embed`` every ``emb_*`` is None.
    """
    keys = [f"emb_{i}" for i in range(EMBEDDING_DIMS)]
    if embed is None:
        return dict.fromkeys(keys)
    vectors = np.asarray(embed(texts), dtype=float)
    if vectors.ndim != 2 or vectors.shape[0] != len(texts):
        raise ValueError(f"embed callable returned shape {vectors.shape}, expected ({len(texts)}, dim)")
    summary = vectors.mean(axis=0) @ projection_matrix(vectors.shape[1])  # (8,)
    return dict(zip(keys, (float(v) for v in summary), strict=True))


def teacher_features(teacher: ModelDescriptor | None, teacher_score: float | None) -> dict[str, float | None]:
    """Teacher layers, hidden size, parameters and dev score; None where unknown."""

    def num(value: int | None) -> float | None:
        return None if value is None else float(value)

    return {
        "teacher_layers": num(teacher.num_layers) if teacher else None,
        "teacher_hidden": num(teacher.hidden_size) if teacher else None,
        "teacher_params": num(teacher.num_params) if teacher else None,
        "teacher_score": None if teacher_score is None else float(teacher_score),
    }


def sample_indices(n: int, max_sample: int, seed: int) -> np.ndarray:
    """Sorted seeded sample of ``min(n, max_sample)`` indices out of ``range(n)``."""
    if n <= max_sample:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_sample, replace=False))


def example_text(example: Any) -> str:
    """The text the model reads: both segments of a pair, joined by a space."""
    pair = getattr(example, "text_pair", None)
    return example.text if not pair else f"{example.text} {pair}"


def compute_meta_features(
    dataset: Any,
    *,
    tokenize: Tokenize | None = None,
    unk_rate: UnkRate | None = None,
    embed: Embed | None = None,
    teacher: ModelDescriptor | None = None,
    teacher_score: float | None = None,
    max_sample: int = 2000,
    seed: int = 0,
) -> Mapping[str, float | None]:
    """Every meta-feature of ``dataset`` as a fresh read-only mapping.

    Args:
        dataset: A ``TextDataset`` (``train``, ``task_kind``, ``is_pair``, optional ``label_names``).
        tokenize: The student's tokenizer on a batch of texts; None measures whitespace words.
        unk_rate: Unknown-token share of a batch under the student's tokenizer.
        embed: Sentence encoder (e.g. MiniLM-L6) returning an (n, dim) array.
        teacher: Teacher descriptor, if known.
        teacher_score: Teacher dev score, if known.
        max_sample: At most this many training examples feed the text features.
        seed: Sampling seed.

    Returns:
        A ``types.MappingProxyType`` from feature name to float or None.

    Raises:
        DatasetError: Empty training split or an unknown task kind.
    """
    if max_sample < 1:
        raise ValueError(f"max_sample must be >= 1, got {max_sample}")
    train = list(dataset.train)
    out: dict[str, float | None] = {}
    out.update(size_features(len(train)))
    out.update(task_features(dataset.task_kind, dataset.is_pair))
    out.update(
        label_features([ex.label for ex in train], dataset.task_kind, getattr(dataset, "label_names", None))
    )
    texts = [example_text(train[i]) for i in sample_indices(len(train), max_sample, seed)]
    tokens = tokenize(texts) if tokenize is not None else [t.split() for t in texts]
    if len(tokens) != len(texts):
        raise ValueError(f"tokenize returned {len(tokens)} token lists for {len(texts)} texts")
    out.update(length_features(tokens, student_tokens=tokenize is not None))
    out.update(type_token_ratio(tokens))
    out.update(unk_rate_feature(texts, unk_rate))
    out.update(embedding_summary(texts, embed))
    out.update(teacher_features(teacher, teacher_score))
    return MappingProxyType(out)
