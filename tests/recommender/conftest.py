"""Fixtures of the recommender tests: small SYNTHETIC histories and a single-threaded sklearn."""

from __future__ import annotations

from pathlib import Path

import pytest
import sklearn.ensemble  # noqa: F401  (loads OpenMP so the thread limit below applies to it)
from threadpoolctl import threadpool_limits

from tests.recommender.synthetic import ALL_AVAILABLE, synthetic_history

FIXTURES = Path(__file__).parent / "fixtures"
FAST = {"max_iter": 30, "learning_rate": 0.2, "availability": ALL_AVAILABLE}


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    # OpenMP spinning on a shared 2-core machine makes tree fitting 10x slower, not faster.
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="session")
def history():
    """A small SYNTHETIC history (5 datasets, unequal runs per group)."""
    return synthetic_history(5, runs_per_group=(8, 20), seed=1)
