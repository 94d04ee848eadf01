"""What a sweep history says about the Distiller paper's findings (``shared/distiller-spec.md`` §1).

Ratios differ far more between datasets and students than between pipelines, so every effect is
measured on the *group-relative* ratio: a run's ratio minus the mean ratio of its (dataset,
teacher, student) group. ``rank`` is the run's percentile inside its group (1 = best, 0 = worst).
Effects are descriptive (means over the runs that happen to use a level); the balanced sweep
order keeps the levels' other components comparable.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recommender.records import SweepRecord

SIZE_EDGES = (0, 300, 1000, float("inf"))
SIZE_LABELS = ("<300", "300-1000", ">1000")
COMPONENTS = ("intermediate", "strategy", "mi_alpha", "prediction", "mixup", "augmentation", "augmenter")


def history_frame(records: Sequence[SweepRecord]) -> pd.DataFrame:
    """One row per record with its components, group-relative ratio and in-group rank.

    Raises:
        ValueError: No record with a ratio and a KD config.
    """
    rows = []
    for r in records:
        if r.kd_config is None or r.ratio is None:
            continue
        cfg = r.kd_config
        inter, aug = cfg.intermediate, cfg.augmentation
        rows.append(
            {
                "dataset": r.dataset_id.split(":")[0],
                "group": "|".join(r.group_key),
                "n_train": r.meta_features.get("n_train"),
                "student_layers": r.student.num_layers,
                "ratio": r.ratio,
                "intermediate": inter.loss,
                "strategy": inter.strategy if inter.loss != "none" else None,
                "mi_alpha": f"{inter.alpha:g}" if inter.loss == "mi" else None,
                "prediction": cfg.prediction.loss,
                "mixup": "on" if cfg.mixup.enabled else "off",
                "augmentation": "on" if aug.pipeline else "off",
                "augmenter": ">".join(aug.pipeline) if aug.pipeline else None,
            }
        )
    if not rows:
        raise ValueError("no record with a ratio and a KD config")
    frame = pd.DataFrame(rows)
    by_group = frame.groupby("group")["ratio"]
    frame["relative"] = frame["ratio"] - by_group.transform("mean")
    size = by_group.transform("size")
    frame["rank"] = np.where(size > 1, (by_group.rank(method="average") - 1) / (size - 1).clip(lower=1), 0.5)
    frame["size"] = pd.cut(frame["n_train"].astype(float), SIZE_EDGES, labels=SIZE_LABELS).astype(str)
    return frame


def level_table(frame: pd.DataFrame, component: str) -> list[dict[str, Any]]:
    """Per level of ``component``: runs, mean ratio, mean relative ratio (with its standard error)
    and mean in-group rank, best first."""
    sub = frame.dropna(subset=[component])
    out = []
    for level, g in sub.groupby(component):
        rel = g["relative"]
        out.append(
            {
                "level": str(level),
                "n": len(g),
                "mean_ratio": float(g["ratio"].mean()),
                "mean_relative": float(rel.mean()),
                "se_relative": float(rel.std(ddof=1) / np.sqrt(len(g))) if len(g) > 1 else None,
                "mean_rank": float(g["rank"].mean()),
            }
        )
    return sorted(out, key=lambda row: -row["mean_relative"])


def effect_size(frame: pd.DataFrame, component: str) -> float | None:
    """eta squared: the share of the relative ratio's variance between the component's levels."""
    sub = frame.dropna(subset=[component])
    if sub[component].nunique() < 2:
        return None
    total = float(((sub["relative"] - sub["relative"].mean()) ** 2).sum())
    means = sub.groupby(component)["relative"].transform("mean")
    between = float(((means - sub["relative"].mean()) ** 2).sum())
    return between / total if total > 0 else None


def augmentation_effect(frame: pd.DataFrame, *by: str) -> list[dict[str, Any]]:
    """Mean relative ratio with augmentation minus without, per value (combination) of ``by``."""
    out = []
    for values, g in frame.groupby(list(by)):
        on, off = g[g["augmentation"] == "on"]["relative"], g[g["augmentation"] == "off"]["relative"]
        if len(on) and len(off):
            keys = {name: str(v) for name, v in zip(by, values, strict=True)}
            out.append({**keys, "n_on": len(on), "n_off": len(off), "effect": float(on.mean() - off.mean())})
    return out


def best_pipelines(frame: pd.DataFrame) -> dict[str, Any]:
    """How much the best pipeline differs between groups (finding 4)."""
    best = frame.loc[frame.groupby("group")["ratio"].idxmax()]
    return {
        "n_groups": int(len(best)),
        "distinct_best_intermediate": sorted(best["intermediate"].unique().tolist()),
        "best_uses_augmentation": int((best["augmentation"] == "on").sum()),
        "best_uses_mixup": int((best["mixup"] == "on").sum()),
    }


def findings(records: Sequence[SweepRecord]) -> dict[str, Any]:
    """Tables and short statements for each of the paper's findings (JSON-safe)."""
    frame = history_frame(records)
    tables = {c: level_table(frame, c) for c in COMPONENTS}
    eta = {
        c: effect_size(frame, c) for c in ("intermediate", "strategy", "prediction", "mixup", "augmentation")
    }
    ranked = sorted((v, k) for k, v in eta.items() if v is not None)[::-1]
    aug_size = augmentation_effect(frame, "size")
    aug_student = augmentation_effect(frame, "student_layers")
    aug_both = augmentation_effect(frame, "size", "student_layers")
    inter_order = [row["level"] for row in tables["intermediate"]]
    statements = {
        "1_intermediate_matters_most": (
            "effect size (eta^2 of the group-relative ratio): "
            + ", ".join(f"{k} {v:.3f}" for v, k in ranked)
            + f"; the largest is {ranked[0][1]}"
            if ranked
            else "effect sizes are not measurable: the relative ratios do not vary"
        ),
        "2_mi_alpha": (
            f"intermediate losses by mean relative ratio: {', '.join(inter_order)}; MI-alpha by alpha: "
            + ", ".join(
                f"{row['level']}: {row['mean_relative']:+.4f} (n={row['n']})" for row in tables["mi_alpha"]
            )
        ),
        "3_augmentation": (
            "augmentation effect (on - off): by training size "
            + ", ".join(f"{row['size']}: {row['effect']:+.4f}" for row in aug_size)
            + "; by student layers "
            + ", ".join(f"{row['student_layers']}: {row['effect']:+.4f}" for row in aug_student)
        ),
    }
    return {
        "n_records": int(len(frame)),
        "n_groups": int(frame["group"].nunique()),
        "datasets": sorted(frame["dataset"].unique().tolist()),
        "tables": tables,
        "effect_size": eta,
        "augmentation_by_size": aug_size,
        "augmentation_by_student": aug_student,
        "augmentation_by_size_and_student": aug_both,
        "best_pipelines": best_pipelines(frame),
        "statements": statements,
    }


def plot_findings(result: dict[str, Any], path: str | Path) -> Path:
    """A 2x2 PNG: intermediate losses, MI-alpha, augmentation by size, effect sizes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    for ax, component, title in (
        (axes[0, 0], "intermediate", "Intermediate loss"),
        (axes[0, 1], "mi_alpha", "MI-alpha (intermediate loss mi)"),
    ):
        rows = sorted(result["tables"][component], key=lambda r: r["level"])
        ax.bar(
            [r["level"] for r in rows],
            [r["mean_relative"] for r in rows],
            yerr=[r["se_relative"] or 0.0 for r in rows],
            capsize=3,
        )
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("ratio - group mean")
        ax.tick_params(axis="x", labelsize=8, rotation=45)
    rows = result["augmentation_by_size_and_student"]
    sizes = [label for label in SIZE_LABELS if any(r["size"] == label for r in rows)]
    layers = sorted({r["student_layers"] for r in rows}, key=float)
    width = 0.8 / max(len(layers), 1)
    for j, n in enumerate(layers):
        effect = {r["size"]: r["effect"] for r in rows if r["student_layers"] == n}
        xs = [i + (j - (len(layers) - 1) / 2) * width for i in range(len(sizes))]
        axes[1, 0].bar(xs, [effect.get(sz, 0.0) for sz in sizes], width=width, label=f"{n}-layer student")
    axes[1, 0].set_xticks(range(len(sizes)), sizes)
    axes[1, 0].axhline(0, color="black", linewidth=0.8)
    axes[1, 0].set_title("Augmentation effect (on - off) by training examples", fontsize=10)
    axes[1, 0].set_ylabel("relative ratio difference")
    axes[1, 0].legend(fontsize=8)
    eta = {k: v for k, v in result["effect_size"].items() if v is not None}
    axes[1, 1].barh(list(eta), list(eta.values()))
    axes[1, 1].set_title("Effect size (eta^2 of the relative ratio)", fontsize=10)
    fig.suptitle(f"Sweep history: {result['n_records']} runs, {result['n_groups']} (dataset, student) groups")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
