"""``autodistiller kb evaluate``: the nested evaluation, its learning curve, JSON + Markdown + PNG."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from recommender.learner import MetaLearner
from recommender.nested import METHODS, METRICS, nested_evaluation
from recommender.records import SweepRecord, read_records, records_digest
from recommender.sweep import SWEEP_GRID

FRACTIONS = (0.25, 0.5, 0.75, 1.0)


def _cell(stat: Mapping[str, Any] | None, scale: float = 1.0) -> str:
    if not stat:
        return ""
    lo, hi = stat["ci90"]
    return f"{scale * stat['mean']:.3f} [{scale * lo:.3f}, {scale * hi:.3f}]"


def evaluation_markdown(result: Mapping[str, Any]) -> str:
    """The evaluation as Markdown tables (means with bootstrap 90 % intervals over groups)."""
    full = result["full"]
    lines = [
        f"Nested leave-one-source-task-out on {full['n_records']} runs, source tasks "
        f"{', '.join(full['source_tasks'])} ({len(full['groups'])} held-out groups); records digest "
        f"`{result['records_digest'][:12]}`. Regenerate: `{result['command']}`.",
        "",
        "| method | " + " | ".join(METRICS) + " |",
        "|---|" + "---|" * len(METRICS),
    ]
    for method in METHODS:
        stats = full["methods"][method]
        lines.append(f"| {method} | " + " | ".join(_cell(stats.get(m)) for m in METRICS) + " |")
    lines += ["", "| paired difference (mean over groups) | mean [90 % CI] |", "|---|---|"]
    lines += [f"| {name} | {_cell(stat)} |" for name, stat in full["differences"].items()]
    lines += ["", "Hyper-parameters chosen inside each training fold:", ""]
    lines += [f"- held out {f['held_out']}: {f['chosen_params']}" for f in full["folds"]]
    lines += ["", "**Learning curve** (share of each training group's pipelines kept):", ""]
    lines += [
        "| fraction | " + " | ".join(f"{m} top1" for m in METHODS[:3]) + " | meta best_of_3 | coverage |"
    ]
    lines += ["|---|" + "---|" * 5]
    for point in result["learning_curve"]:
        m = point["methods"]
        lines.append(
            f"| {point['fraction']:.2f} | "
            + " | ".join(_cell(m[name].get("top1")) for name in METHODS[:3])
            + f" | {_cell(m['meta_learner'].get('best_of_3'))} | {_cell(m['meta_learner'].get('coverage'))} |"
        )
    if result.get("mixing") is not None:
        mix = result["mixing"]
        lines += [
            "",
            f"**History mixing**: {mix['n_extra']} imported runs added to every training fold:",
            "",
            "| metric | built-in only | mixed |",
            "|---|---|---|",
        ]
        for metric in ("top1", "best_of_3", "coverage"):
            lines.append(
                f"| {metric} | {_cell(full['methods']['meta_learner'].get(metric))} | "
                f"{_cell(mix['methods']['meta_learner'].get(metric))} |"
            )
    return "\n".join(lines) + "\n"


def plot_evaluation(result: Mapping[str, Any], path: str | Path) -> Path:
    """Two panels: top-1 and best-of-3 per method with 90 % intervals; the learning curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    full = result["full"]["methods"]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for j, metric in enumerate(("top1", "best_of_3")):
        means = [full[m][metric]["mean"] for m in METHODS]
        errs = [
            [full[m][metric]["mean"] - full[m][metric]["ci90"][0] for m in METHODS],
            [full[m][metric]["ci90"][1] - full[m][metric]["mean"] for m in METHODS],
        ]
        x = [i + 0.35 * j for i in range(len(METHODS))]
        ax.bar(x, means, width=0.35, yerr=errs, capsize=3, label=metric)
    ax.set_xticks([i + 0.17 for i in range(len(METHODS))], METHODS, rotation=20, fontsize=8)
    ax.set_ylim(0.85, 1.0)
    ax.set_ylabel("picked score / best tried (mean over held-out groups)")
    ax.set_title("Nested leave-one-source-task-out (90 % bootstrap CI)")
    ax.legend(fontsize=8)
    for method in METHODS[:4]:
        pts = result["learning_curve"]
        ax2.plot(
            [p["fraction"] for p in pts],
            [p["methods"][method]["top1"]["mean"] for p in pts],
            "o-",
            label=method,
        )
    ax2.set_xlabel("share of the training history kept")
    ax2.set_ylabel("top-1 picked / best")
    ax2.set_title("Learning curve")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_nested_evaluation(
    records_path: str | Path,
    prefix: str | Path,
    *,
    fractions: Sequence[float] = FRACTIONS,
    extra: Sequence[SweepRecord] = (),
    command: str = "",
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the nested evaluation (and learning curve, and mixing when ``extra`` is given); write
    ``<prefix>_nested.json``, ``<prefix>_nested.md`` and ``<prefix>_nested.png``."""
    records = read_records(records_path)
    learner = MetaLearner(grid=SWEEP_GRID)
    full = nested_evaluation(records, learner=learner, progress=progress)
    curve = []
    for fraction in fractions:
        point = full if fraction >= 1.0 else nested_evaluation(records, learner=learner, fraction=fraction)
        curve.append({"fraction": fraction, "methods": point["methods"], "differences": point["differences"]})
        if progress is not None:
            progress(
                f"learning curve {fraction:.2f}: meta-learner top-1 "
                f"{point['methods']['meta_learner']['top1']['mean']:.4f}"
            )
    mixing = None
    if extra:
        mixed = nested_evaluation(records, learner=learner, extra_train=extra)
        mixing = {"n_extra": len(extra), "methods": mixed["methods"], "differences": mixed["differences"]}
    result = {
        "records": str(records_path),
        "records_digest": records_digest(records),
        "command": command,
        "full": full,
        "learning_curve": curve,
        "mixing": mixing,
    }
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{prefix}_nested.json").write_text(
        json.dumps(result, indent=2, allow_nan=False) + "\n", encoding="utf-8"
    )
    Path(f"{prefix}_nested.md").write_text(evaluation_markdown(result), encoding="utf-8")
    plot_evaluation(result, f"{prefix}_nested.png")
    return result
