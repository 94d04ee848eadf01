"""Top-k as a portfolio: the k pipelines with the largest expected best ratio among them.

The model's uncertainty about a pipeline is its measured out-of-task error relative to the other
pipelines of the group (``sigma``, from :mod:`recommender.conformal`), and that error is shared by
pipelines that share components: a pipeline's error is a sum of one random term per component
value (its intermediate loss, its KD loss, ...) and one of its own, each of variance
``sigma^2 / (n_components + 1)``. Two near-copies (same everything but the augmentation
probability) are then strongly correlated and the second adds little to the expected best; a
pipeline that differs in several components is a second real chance. When ``sigma`` is small next
to the gaps between predictions, the picks follow the predictions.

The random terms are a fixed bank of standard normal draws (seeded, centred per column), so equal
questions get equal answers and a call costs a few array operations on a shortlist.
"""

from __future__ import annotations

import numpy as np

from recommender.explain import CandidateTable

BANK_WIDTH = 512  # distinct draws per component; value ids beyond it wrap around
SHORTLIST = 48  # >= 4 x the greedy picks of MetaLearner.recommend (10)


def noise_bank(n_components: int, n_samples: int, seed: int) -> np.ndarray:
    """(n_components + 1, n_samples, BANK_WIDTH) standard normals, each column centred."""
    bank = np.random.default_rng(seed).standard_normal((n_components + 1, n_samples, BANK_WIDTH))
    return bank - bank.mean(axis=1, keepdims=True)


def correlated_noise(
    bank: np.ndarray, table: CandidateTable, indices: np.ndarray, sigma: float
) -> np.ndarray:
    """(n_samples, len(indices)) error draws for the candidates ``indices`` of ``table``."""
    return sigma * unit_noise(bank, table.value_codes[:, indices])


def unit_noise(bank: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """(n_samples, m) unit-variance draws for candidates with value ``codes`` (n_components + 1, m)."""
    codes = codes % BANK_WIDTH
    draws = bank[np.arange(codes.shape[0])[:, None], :, codes]  # (n_components + 1, m, n_samples)
    return draws.sum(axis=0).T / np.sqrt(codes.shape[0])


def shortlist(pred: np.ndarray, table: CandidateTable, k: int) -> np.ndarray:
    """Candidates a portfolio may pick: the best predicted ones, and the best of every value of
    every component (so a pick with another intermediate loss is always on offer)."""
    m = min(pred.size, max(SHORTLIST, 4 * k))  # k <= 10 picks greedily: the same list, so the
    # picks for a smaller k are the first picks for a larger one
    top = np.argpartition(-pred, m - 1)[:m] if m < pred.size else np.arange(pred.size)
    extra = []
    back = -np.arange(pred.size)  # the first best of a run has the largest -position
    for order, starts, segment in zip(
        table.value_order, table.value_starts, table.value_segment, strict=True
    ):
        values = pred[order]  # (n,) grouped by value of this component
        is_best = values >= np.maximum.reduceat(values, starts)[segment]
        first = np.maximum.reduceat(np.where(is_best, back, -pred.size), starts)
        extra.append(order[-first])  # the first best candidate of each value
    out = np.unique(np.concatenate([top, *extra]))
    return out[np.argsort(-pred[out], kind="stable")]


def greedy_portfolio(
    pred: np.ndarray, noise: np.ndarray, k: int, ceiling: float
) -> tuple[np.ndarray, np.ndarray]:
    """Pick ``k`` of the candidates greedily by expected gain of the best; the first pick is the
    best predicted one.

    Args:
        pred: (m,) predicted ratios, best first.
        noise: (n_samples, m) error draws.
        k: Picks (at most m).
        ceiling: The highest plausible ratio (samples are clipped to it).

    Returns:
        (picks, expected): indices into ``pred`` in pick order, and the expected best ratio of the
        first 1..k picks.
    """
    samples = np.minimum(pred[None, :] + noise, ceiling)  # (n_samples, m)
    first = int(np.argmax(pred))
    picks, best = [first], samples[:, first].copy()
    expected = [float(min(pred[first], ceiling))]
    taken = np.zeros(pred.size, dtype=bool)
    taken[first] = True
    for _ in range(min(k, pred.size) - 1):
        gain = np.maximum(samples, best[:, None]).sum(axis=0)  # n_samples x the expected best
        gain[taken] = -np.inf
        j = int(np.argmax(gain))
        picks.append(j)
        taken[j] = True
        best = np.maximum(best, samples[:, j])
        expected.append(float(best.mean()) - float(samples[:, first].mean()) + expected[0])
    return np.array(picks, dtype=np.intp), np.array(expected)


def expected_best(pred: np.ndarray, noise: np.ndarray, ceiling: float) -> float:
    """Expected best ratio of a given set of candidates (same sampling as the greedy picks)."""
    samples = np.minimum(pred[None, :] + noise, ceiling)
    return float(samples.max(axis=1).mean())
