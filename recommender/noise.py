"""Seed noise against pipeline effects: how much of a sweep's ranking is signal.

For each group (variant, teacher, student) of records run with two or more seeds per pipeline:

- ``seed_std``: the pooled within-pipeline sample standard deviation of the ratio (the root of the
  mean of the per-pipeline variances), what re-running the same pipeline with another seed moves;
- ``pipeline_spread``: the standard deviation (n - 1) of the pipelines' seed-mean ratios, what
  choosing another pipeline moves;
- ``snr = pipeline_spread / seed_std``, the signal-to-noise figure. Below about 1, "the best tried
  pipeline" of a one-seed sweep is mostly the luckiest seed;
- ``true_spread``: the spread with the noise a mean of ``k`` seeds still carries taken out
  (``sqrt(max(0, spread² - seed_std² / k))``), and ``true_snr`` from it, the figure to design a
  history by: a one-seed sweep ranks pipelines well only when ``true_snr`` is well above 1.

Torch-free: it reads :class:`~recommender.records.SweepRecord` values only.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from recommender.records import SweepRecord, cell_key


def _sample_std(values: Sequence[float]) -> float | None:
    return statistics.stdev(values) if len(values) >= 2 else None


def group_noise(cells: Mapping[str, Sequence[float]]) -> dict[str, Any]:
    """The noise figures of one group from its pipelines' per-seed ratios.

    Args:
        cells: pipeline -> ratios of its seeds (pipelines with one seed count for the spread only).

    Returns:
        ``n_pipelines``, ``n_runs``, ``seeds_per_pipeline`` (the smallest count), ``seed_std``,
        ``pipeline_spread``, ``snr``, ``true_spread``, ``true_snr`` (None where undefined), and
        ``best_pipeline_margin``: the best seed-mean ratio minus the second best.
    """
    ratios = {k: list(v) for k, v in cells.items() if v}
    means = sorted((statistics.fmean(v) for v in ratios.values()), reverse=True)
    variances = [statistics.variance(v) for v in ratios.values() if len(v) >= 2]
    seed_std = math.sqrt(statistics.fmean(variances)) if variances else None
    spread = _sample_std(means)
    k = min((len(v) for v in ratios.values()), default=0)
    true_spread = None
    if spread is not None and seed_std is not None and k:
        true_spread = math.sqrt(max(0.0, spread**2 - seed_std**2 / k))

    def ratio_of(a: float | None, b: float | None) -> float | None:
        return None if a is None or not b else a / b

    return {
        "n_pipelines": len(ratios),
        "n_runs": sum(map(len, ratios.values())),
        "seeds_per_pipeline": k,
        "seed_std": seed_std,
        "pipeline_spread": spread,
        "snr": ratio_of(spread, seed_std),
        "true_spread": true_spread,
        "true_snr": ratio_of(true_spread, seed_std),
        "best_pipeline_margin": means[0] - means[1] if len(means) >= 2 else None,
        "mean_ratio": statistics.fmean(means) if means else None,
    }


def noise_by_group(records: Iterable[SweepRecord]) -> list[dict[str, Any]]:
    """Per group (dataset, teacher, student): its noise figures and the fidelity of its runs.

    Only records with a ratio count; groups sort by name.
    """
    groups: dict[tuple[str, str, str], dict[str, list[float]]] = {}
    fidelity: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in records:
        if r.ratio is None:
            continue
        cells = groups.setdefault(r.group_key, {})
        cells.setdefault(json.dumps(cell_key(r)), []).append(r.ratio)
        fidelity.setdefault(r.group_key, r.fidelity())
    out = []
    for key in sorted(groups):
        dataset, teacher, student = key
        row = {"dataset": dataset, "teacher": teacher, "student": student, **fidelity[key]}
        out.append({**row, **group_noise(groups[key])})
    return out


def summarize(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Medians over the groups with a defined figure, and the pooled seed std."""

    def median(name: str) -> float | None:
        values = [r[name] for r in rows if r.get(name) is not None]
        return statistics.median(values) if values else None

    seed_vars = [r["seed_std"] ** 2 for r in rows if r.get("seed_std") is not None]
    return {
        "n_groups": len(rows),
        "n_runs": sum(r["n_runs"] for r in rows),
        "median_seed_std": median("seed_std"),
        "pooled_seed_std": math.sqrt(statistics.fmean(seed_vars)) if seed_vars else None,
        "median_pipeline_spread": median("pipeline_spread"),
        "median_snr": median("snr"),
        "median_true_snr": median("true_snr"),
        "groups_with_true_snr_above_1": sum(1 for r in rows if (r.get("true_snr") or 0) > 1),
    }


def noise_report(records: Iterable[SweepRecord]) -> dict[str, Any]:
    """``groups`` (:func:`noise_by_group`) and their ``summary`` (:func:`summarize`)."""
    rows = noise_by_group(records)
    return {"summary": summarize(rows), "groups": rows}


def write_noise(
    records: Iterable[SweepRecord], path: str | Path, *, setting: str, command: str | None = None
) -> dict[str, Any]:
    """Add (or replace) one setting's noise report in the JSON file at ``path``.

    The file maps each setting's name (e.g. ``kb-v1``, ``dev-400``) to its report, so designs
    measured in different sessions sit side by side.

    Returns:
        The report written for ``setting``.
    """
    path = Path(path)
    existing = json.loads(path.read_text()) if path.is_file() else {}
    report = {**noise_report(records), "command": command}
    settings = {**existing.get("settings", {}), setting: report}
    doc = {
        "what": (
            "per group: seed_std = pooled within-pipeline std of the ratio over seeds; pipeline_spread = "
            "std of the pipelines' seed-mean ratios; snr = spread / seed_std; true_snr removes the "
            "noise left in a k-seed mean from the spread (see recommender/noise.py)"
        ),
        "settings": dict(sorted(settings.items())),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    return report
