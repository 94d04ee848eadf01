"""The knowledge base's evidence: leave-one-dataset-out, the held-out check, and the findings.

``write_evidence`` regenerates everything from the committed records; the held-out check trains,
so its selection (:func:`heldout_choices`) lives here and its training in ``autodistiller kb
heldout``, which writes ``<prefix>_heldout.json`` for :func:`evidence_markdown` to include.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.config import KDConfig, ModelDescriptor, TaskKind
from recommender.baselines import FixedDefaultRecommender
from recommender.evaluation import leave_one_dataset_out, plot_evaluation
from recommender.explain import describe
from recommender.learner import MetaLearner
from recommender.records import SweepRecord, read_records, records_digest
from recommender.sweep import SWEEP_GRID, stable_seed
from recommender.sweep_findings import findings, plot_findings

METHODS = ("recommended", "random", "fixed_default")


def pipeline_label(config: KDConfig) -> str:
    """A one-line description of a pipeline (its components, not its training settings)."""
    return "; ".join(describe(config, c) for c in ("intermediate", "prediction", "mixup", "augmentation"))


@dataclass(frozen=True)
class HeldoutChoice:
    """One pipeline the held-out check trains, and why it was chosen."""

    method: str  # recommended | random | fixed_default
    rank: int  # 1-based inside its method
    kd_config: KDConfig
    predicted_ratio: float


def heldout_choices(
    learner: MetaLearner,
    history: Sequence[SweepRecord],
    candidates: Sequence[KDConfig],
    meta_features: Mapping[str, float | None],
    teacher: ModelDescriptor,
    student: ModelDescriptor,
    task_kind: TaskKind,
    *,
    k: int = 3,
    n_random: int = 3,
    seed: int = 0,
) -> list[HeldoutChoice]:
    """The top-``k`` recommended pipelines, ``n_random`` other candidates drawn with ``seed``, and
    the best fixed default of the history (the pipeline with the best mean relative ratio).

    Raises:
        ValueError: Too few candidates, or a fixed default that is not among the candidates.
    """
    if len(candidates) < k + n_random + 1:
        raise ValueError(f"need at least {k + n_random + 1} candidates, have {len(candidates)}")
    default = FixedDefaultRecommender().fit(history).default_config_
    by_key = {c.pipeline_key(): c for c in candidates}
    if default.pipeline_key() not in by_key:
        raise ValueError(
            "the fixed default of the history is not among the candidates (other training settings?)"
        )
    ranked = learner.recommend(
        meta_features, teacher, student, k=len(candidates), candidates=candidates, task_kind=task_kind
    )
    predicted = {r.kd_config.pipeline_key(): r.predicted_ratio for r in ranked}
    out = [
        HeldoutChoice("recommended", i + 1, r.kd_config, r.predicted_ratio) for i, r in enumerate(ranked[:k])
    ]
    taken = {c.kd_config.pipeline_key() for c in out} | {default.pipeline_key()}
    others = [c for c in candidates if c.pipeline_key() not in taken]
    rng = np.random.default_rng(stable_seed(seed, student.name))
    for i, j in enumerate(rng.choice(len(others), size=n_random, replace=False)):
        config = others[int(j)]
        out.append(HeldoutChoice("random", i + 1, config, predicted[config.pipeline_key()]))
    out.append(
        HeldoutChoice("fixed_default", 1, by_key[default.pipeline_key()], predicted[default.pipeline_key()])
    )
    return out


def heldout_summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean and best real ratio per method, per student and over all students.

    ``rows`` hold ``student``, ``method`` and ``ratio`` (None for a run that failed).
    """

    def stats(subset: list[Mapping[str, Any]]) -> dict[str, Any]:
        out = {}
        for method in METHODS:
            ratios = [r["ratio"] for r in subset if r["method"] == method and r["ratio"] is not None]
            out[method] = {
                "n": len(ratios),
                "mean_ratio": float(np.mean(ratios)) if ratios else None,
                "best_ratio": float(np.max(ratios)) if ratios else None,
            }
        return out

    def top1(subset: list[Mapping[str, Any]]) -> dict[str, Any]:
        """Rank 1 of the recommendation against the fixed default, and how different the picks are."""
        first = [r for r in subset if r["method"] == "recommended" and r.get("rank", 1) == 1]
        default = [r for r in subset if r["method"] == "fixed_default"]
        picks = [r.get("components") for r in subset if r["method"] == "recommended"]
        diffs = [sum(a[c] != b[c] for c in a) for i, a in enumerate(picks) for b in picks[i + 1 :] if a and b]
        return {
            "recommended_top1_ratio": first[0]["ratio"] if first else None,
            "fixed_default_ratio": default[0]["ratio"] if default else None,
            "min_components_differing_between_picks": min(diffs) if diffs else None,
        }

    students = sorted({r["student"] for r in rows})
    return {
        "overall": stats(list(rows)),
        "by_student": {s: stats([r for r in rows if r["student"] == s]) for s in students},
        "top1_vs_default": {s: top1([r for r in rows if r["student"] == s]) for s in students},
    }


def plot_heldout(result: dict[str, Any], path: str | Path) -> Path:
    """A PNG: the real ratio of every trained pipeline, grouped by student, coloured by method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["rows"] if r["ratio"] is not None]
    students = sorted({r["student"] for r in rows})
    colours = {"recommended": "tab:green", "random": "tab:gray", "fixed_default": "tab:blue"}
    fig, ax = plt.subplots(figsize=(8, 4))
    x = 0.0
    ticks = []
    for s in students:
        start = x
        for method in METHODS:
            for r in (r for r in rows if r["student"] == s and r["method"] == method):
                ax.bar(x, r["ratio"], color=colours[method], width=0.8)
                x += 1
        ticks.append(((start + x - 1) / 2, s))
        x += 1
    for method, colour in colours.items():
        ax.bar(0, 0, color=colour, label=method)
    ratios = [r["ratio"] for r in rows] or [1.0]
    ax.set_ylim(min(ratios) - 0.05, max(ratios) + 0.02)
    ax.set_xticks([t for t, _ in ticks], [s for _, s in ticks])
    ax.set_ylabel("student score / teacher score")
    ax.set_title(
        f"Held-out variant {result['dataset']}: top-{result['k']} recommended vs random vs fixed default"
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) else ("" if v is None else str(v))

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def evidence_markdown(
    loo: Mapping[str, Any], found: Mapping[str, Any], heldout: Mapping[str, Any] | None, prefix: str
) -> str:
    """The evidence summary (Markdown) with links to the PNGs beside it."""
    name = Path(prefix).name
    parts = [
        f"Sweep history: {found['n_records']} runs, {len(found['datasets'])} dataset variants, "
        f"{found['n_groups']} (dataset, student) groups. Regenerate: `{loo.get('command', '')}`.",
        "",
        "**Leave-one-dataset-out** (mean over held-out groups of picked pipeline's score / best tried):",
        "",
        _table(["method", "picked / best"], [(k, v) for k, v in loo["summary"].items()]),
        "",
        f"![leave-one-dataset-out]({name}_loo.png)",
        "",
    ]
    if heldout is not None:
        rows = [
            (r["student"], r["method"], r["rank"], r["pipeline"], r["predicted_ratio"], r["ratio"])
            for r in heldout["rows"]
        ]
        parts += [
            f"**Held-out variant {heldout['dataset']}** (in no sweep; trained for real):",
            "",
            _table(["student", "method", "rank", "pipeline", "predicted ratio", "real ratio"], rows),
            "",
            _table(
                ["method", "mean ratio", "best ratio"],
                [(m, s["mean_ratio"], s["best_ratio"]) for m, s in heldout["summary"]["overall"].items()],
            ),
            "",
            f"![held-out check]({name}_heldout.png)",
            "",
        ]
    parts += ["**The paper's findings, as this history sees them:**", ""]
    parts += [f"- {key.split('_', 1)[0]}. {text}" for key, text in found["statements"].items()]
    best = found["best_pipelines"]
    parts += [
        f"- 4. best pipeline per group: {best['n_groups']} groups, best intermediate losses "
        f"{', '.join(best['distinct_best_intermediate'])}; {best['best_uses_augmentation']} use augmentation",
        "",
        f"![findings]({name}_findings.png)",
        "",
    ]
    return "\n".join(parts)


def write_evidence(
    records_path: str | Path,
    prefix: str | Path,
    *,
    min_configs: int = 5,
    max_iter: int = 200,
    command: str = "",
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Write ``<prefix>_loo.json/.png``, ``<prefix>_findings.json/.png`` and ``<prefix>.md``.

    A ``<prefix>_heldout.json`` written by ``kb heldout`` is included in the Markdown.

    Raises:
        FileNotFoundError, ValueError: No records, or fewer than two datasets.
    """
    records = read_records(records_path)
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    learner = MetaLearner(grid=SWEEP_GRID, max_iter=max_iter)
    loo = leave_one_dataset_out(records, learner=learner, min_configs=min_configs, progress=progress)
    loo.update(records=str(records_path), records_digest=records_digest(records), command=command)
    _write_json(loo, Path(f"{prefix}_loo.json"))
    if loo["groups"]:
        plot_evaluation(loo, f"{prefix}_loo.png")
    found = findings(records)
    _write_json(found, Path(f"{prefix}_findings.json"))
    plot_findings(found, f"{prefix}_findings.png")
    heldout_file = Path(f"{prefix}_heldout.json")
    heldout = json.loads(heldout_file.read_text()) if heldout_file.is_file() else None
    Path(f"{prefix}.md").write_text(evidence_markdown(loo, found, heldout, str(prefix)), encoding="utf-8")
    return {"loo": loo["summary"], "n_groups": loo["n_groups"], "findings": found["statements"]}


def _write_json(data: Any, path: Path) -> None:
    path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")
