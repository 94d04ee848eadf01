"""Deterministic, seeded splitting and subsampling.

Order comes from SHA-256 of ``seed + key``, not from ``random`` or ``hash()``: the same seed gives
the same split on every machine, Python version and ``PYTHONHASHSEED``, and a row's side depends on
its own key, not on the file's row order.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter, defaultdict
from collections.abc import Sequence


def hash_order(keys: Sequence[str], seed: int, salt: str = "") -> list[int]:
    """Indices of ``keys`` in a seeded pseudo-random order that only depends on the keys."""

    def rank(i: int) -> bytes:
        return hashlib.sha256(f"{seed}\x1f{salt}\x1f{keys[i]}".encode()).digest()

    return sorted(range(len(keys)), key=lambda i: (rank(i), keys[i]))


def _round(x: float) -> int:
    return math.floor(x + 0.5)  # half up: round() is banker's rounding, surprising for counts


def quantile_bins(values: Sequence[float], bins: int = 10) -> list[str]:
    """Equal-count bin names (``q00``...) for regression targets, used as strata."""
    order = sorted(range(len(values)), key=lambda i: (values[i], i))
    out = [""] * len(values)
    for rank, i in enumerate(order):
        out[i] = f"q{rank * bins // max(len(values), 1):02d}"
    return out


def assign_dev(
    strata: Sequence[str], groups: Sequence[str], fraction: float, seed: int, keep_strata: bool = True
) -> list[bool]:
    """Choose dev rows: whole groups, about ``fraction`` of each stratum.

    Each group joins the stratum most of its rows belong to; within a stratum groups are taken in
    seeded hash order while that brings the dev count closer to ``fraction`` of the stratum. When
    every stratum is too small to give a row (20 regression rows in 10 label deciles at 10%), dev is
    filled across strata instead, never taking a stratum's last group, so dev is not left empty.

    Args:
        strata: Per row, the label (or label bin) to stratify on.
        groups: Per row, the group that must stay on one side (the text itself when ungrouped).
        fraction: Target dev fraction.
        seed: Split seed.
        keep_strata: When filling an empty dev, leave every stratum a group in train (classes;
            regression deciles need not).

    Returns:
        Per row, True for dev.
    """
    members: dict[str, list[int]] = defaultdict(list)
    for i, group in enumerate(groups):
        members[group].append(i)
    by_stratum: dict[str, list[str]] = defaultdict(list)
    for group, rows in members.items():
        if len(rows) == 1:  # the common case (ungrouped split): no vote needed
            by_stratum[strata[rows[0]]].append(group)
            continue
        counts = Counter(strata[i] for i in rows)
        top = min(counts, key=lambda s: (-counts[s], s))
        by_stratum[top].append(group)
    is_dev = [False] * len(groups)
    for stratum in sorted(by_stratum):
        names = sorted(by_stratum[stratum])
        size = sum(len(members[g]) for g in names)
        target, taken = _round(fraction * size), 0
        for j in hash_order(names, seed, salt=stratum):
            if taken >= target:
                break
            grow = len(members[names[j]])
            if taken + grow - target <= target - taken:  # adding lands at least as close to the target
                taken += grow
                for i in members[names[j]]:
                    is_dev[i] = True
    if not any(is_dev):
        _fill_dev(is_dev, members, by_stratum, fraction, seed, keep_strata)
    return is_dev


def _fill_dev(
    is_dev: list[bool],
    members: dict[str, list[int]],
    by_stratum: dict[str, list[str]],
    fraction: float,
    seed: int,
    keep_strata: bool,
) -> None:
    """Take about ``fraction`` of all rows as dev, whole groups in seeded order, across strata.

    With ``keep_strata`` a stratum keeps at least one group in train, so dev holds no class that
    train lacks.
    """
    spare = {s: len(g) - keep_strata for s, g in by_stratum.items()}
    candidates = [(s, g) for s in sorted(by_stratum) for g in sorted(by_stratum[s]) if spare[s] > 0]
    target = max(1, _round(fraction * len(is_dev)))
    taken = 0
    order = hash_order([f"{s}\x1f{g}" for s, g in candidates], seed, salt="fill")
    # Groups that land dev closer to the target, in seeded order; else the smallest group alone.
    picks = [j for j in order if len(members[candidates[j][1]]) <= 2 * target]
    picks = picks or sorted(order, key=lambda j: len(members[candidates[j][1]]))[:1]
    for j in picks:
        stratum, group = candidates[j]
        grow = len(members[group])
        if spare[stratum] == 0 or (taken and taken + grow - target > target - taken):
            continue
        spare[stratum] -= 1
        taken += grow
        for i in members[group]:
            is_dev[i] = True
        if taken >= target:
            break


def allocate(counts: dict[str, int], n: int) -> dict[str, int]:
    """Split ``n`` over strata in proportion to ``counts`` (largest remainder), one each when possible."""
    total = sum(counts.values())
    quota = {s: n * c / total for s, c in counts.items()}
    share = {s: min(counts[s], math.floor(q)) for s, q in quota.items()}
    if n >= len(counts):
        for s in counts:
            share[s] = max(share[s], 1)
    while sum(share.values()) > n:  # the 1-each floor overshot: take back from the largest
        s = max(share, key=lambda k: (share[k], k))
        share[s] -= 1
    for s in sorted(counts, key=lambda k: (-(quota[k] - math.floor(quota[k])), k)):
        if sum(share.values()) >= n:
            break
        if share[s] < counts[s]:
            share[s] += 1
    while sum(share.values()) < n:  # remainders could not place everything (strata full)
        s = max((k for k in counts if share[k] < counts[k]), key=lambda k: (counts[k] - share[k], k))
        share[s] += 1
    return share


def stratified_sample(strata: Sequence[str], keys: Sequence[str], n: int, seed: int) -> list[int]:
    """Indices (in original order) of a seeded stratified sample of ``n`` rows."""
    rows: dict[str, list[int]] = defaultdict(list)
    for i, stratum in enumerate(strata):
        rows[stratum].append(i)
    share = allocate({s: len(r) for s, r in rows.items()}, n)
    chosen: list[int] = []
    for stratum, members in rows.items():
        order = hash_order([keys[i] for i in members], seed, salt="sample:" + stratum)
        chosen.extend(members[j] for j in order[: share[stratum]])
    return sorted(chosen)
