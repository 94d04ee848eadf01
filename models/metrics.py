"""Task metrics (torch-free): accuracy, macro-F1, MCC for classification; Pearson, Spearman, R² for
regression. The primary metric per task kind is what ``ratio`` = student / teacher is computed on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef, r2_score

PRIMARY_METRIC = {"classification": "accuracy", "regression": "pearson"}


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int]) -> dict[str, float]:
    """Accuracy, macro-F1 and Matthews correlation of integer labels."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "mcc": float(matthews_corrcoef(y_true, y_pred)),
    }


def regression_metrics(y_true: Sequence[float], y_pred: Sequence[float]) -> dict[str, float]:
    """Pearson and Spearman correlation and R². A constant prediction has correlation 0."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    constant = np.std(y_pred) < 1e-12 or np.std(y_true) < 1e-12
    return {
        "pearson": 0.0 if constant else float(stats.pearsonr(y_true, y_pred)[0]),
        "spearman": 0.0 if constant else float(stats.spearmanr(y_true, y_pred)[0]),
        "r2": float(r2_score(y_true, y_pred)),
    }


def compute_metrics(task_kind: str, y_true: Sequence, outputs: np.ndarray) -> dict[str, float]:
    """Metrics from raw model outputs: logits (N, C) for classification, (N,) or (N, 1) for regression."""
    outputs = np.asarray(outputs)
    if task_kind == "classification":
        return classification_metrics(y_true, outputs.argmax(-1))
    return regression_metrics(y_true, outputs.reshape(-1))


def primary_metric(task_kind: str) -> str:
    return PRIMARY_METRIC[task_kind]
