"""Ablation of the Distiller search space on a real built-in dataset (issue: the search space).

MiniLM-L6 teacher (fine-tuned once, cached) → a student derived from it, on a subsample of
``rotten_tomatoes``: no-KD, KD only, KD + each intermediate loss (skip mapping), KD + MI-α at
α ∈ {0, 0.5, 0.9, 1}, KD + augmentation, KD + mixup; each over several seeds. Scores are the best
dev accuracy over epochs (the paper's protocol; optimistic, no test split).

    python bench/ablation.py                      # defaults below; resumable (finished runs are kept)
    python bench/ablation.py --size 4000 --seeds 0 1 2 --student-layers 3

Writes ``bench/results/ablation_<dataset>.json`` (every run + a per-variant summary, with the command).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from models.config import DistillSpec, KDConfig, StudentSpec  # noqa: E402


def variants() -> dict[str, dict]:
    inter = {
        f"kd+{loss}": {"intermediate": {"loss": loss, "strategy": "skip"}}
        for loss in ("mse", "cos", "pkd", "ce", "att_mse")
    }
    mi = {
        f"kd+mi(a={a})": {"intermediate": {"loss": "mi", "alpha": a, "strategy": "skip"}}
        for a in (0.0, 0.5, 0.9, 1.0)
    }
    return {
        "kd_only": {},
        **inter,
        **mi,
        "kd+aug(embedding,random)": {"augmentation": {"pipeline": ["embedding", "random"], "aug_p": 0.3}},
        "kd+mixup": {"mixup": {"enabled": True}},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description="Distiller search-space ablation")
    ap.add_argument("--dataset", default="rotten_tomatoes", help="built-in name or a dataset file")
    ap.add_argument("--teacher", default="minilm-l6", help="built-in or a local (fine-tuned) HF folder")
    ap.add_argument("--size", type=int, default=2000, help="training examples (subsample)")
    ap.add_argument("--student-layers", type=int, default=2)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--work", default=str(ROOT / "runs" / "ablation"))
    ap.add_argument("--only", nargs="*", help="run only these variants")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--tag", default="", help="suffix of the result file name")
    ap.add_argument("--summarize-only", action="store_true", help="train nothing; summarise finished runs")
    args = ap.parse_args()

    import torch

    from models.pipeline import run_distillation

    torch.set_num_threads(max(1, min(8, os.cpu_count() or 1)))
    dataset = args.dataset if Path(args.dataset).is_file() else f"{args.dataset}@{args.size}"
    training = {
        "epochs": args.epochs,
        "batch_size": 32,
        "max_length": args.max_length,
        "learning_rate": args.lr,
    }
    work = Path(args.work)
    runs = []
    for seed in args.seeds:
        for name, overrides in variants().items():
            if args.only and name not in args.only:
                continue
            out = work / f"{name}-s{seed}".replace("(", "_").replace(")", "").replace("=", "").replace(
                ",", "_"
            )
            report_file = out / "report.json"
            if not report_file.is_file() and args.summarize_only:
                continue
            if not report_file.is_file():  # resumable: finished runs are kept
                cfg = KDConfig.from_dict({**overrides, "training": {**training, "seed": seed}})
                spec = DistillSpec(
                    dataset=dataset,
                    teacher=args.teacher,
                    student=StudentSpec(num_layers=args.student_layers),
                    kd_config=cfg,
                    train_no_kd_baseline=(name == "kd_only"),
                    measure_latency=False,
                    teacher_training={"epochs": 3, "max_length": args.max_length, "learning_rate": args.lr},
                )
                t0 = time.perf_counter()
                run_distillation(spec, out, resume=True)
                print(f"{name} seed {seed}: {time.perf_counter() - t0:.0f}s", flush=True)
            report = json.loads(report_file.read_text())
            runs.append(
                {
                    "variant": name,
                    "seed": seed,
                    "score": report["student_score"],
                    "teacher_score": report["teacher_score"],
                    "ratio": report["ratio"],
                    "train_time_s": report["train_time_s"],
                }
            )
            if name == "kd_only":
                runs.append(
                    {
                        "variant": "no_kd",
                        "seed": seed,
                        "score": report["no_kd_score"],
                        "teacher_score": report["teacher_score"],
                        "ratio": report["no_kd_score"] / report["teacher_score"],
                        "train_time_s": None,
                    }
                )
            write_summary(args, runs)


def write_summary(args, runs: list[dict]) -> None:
    """Write every finished run and a per-variant summary (called after each run: partial results survive)."""
    summary = {}
    for name in dict.fromkeys(r["variant"] for r in runs):
        scores = [r["score"] for r in runs if r["variant"] == name]
        summary[name] = {
            "mean": statistics.mean(scores),
            "std": statistics.pstdev(scores),
            "n": len(scores),
            "mean_ratio": statistics.mean(r["ratio"] for r in runs if r["variant"] == name),
        }
    record = {
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "settings": vars(args),
        "metric": "dev accuracy (best epoch)",
        "teacher_score": runs[0]["teacher_score"] if runs else None,
        "summary": summary,
        "runs": runs,
    }
    Path(args.out).mkdir(parents=True, exist_ok=True)
    path = Path(args.out) / f"ablation_{Path(args.dataset).stem}{args.tag}.json"
    path.write_text(json.dumps(record, indent=2))
    width = max(map(len, summary), default=10)
    for name, s in sorted(summary.items(), key=lambda kv: -kv[1]["mean"]):
        print(f"{name:<{width}}  {s['mean']:.4f} ± {s['std']:.4f}  (ratio {s['mean_ratio']:.4f}, n={s['n']})")
    print(f"saved {path}", flush=True)


if __name__ == "__main__":
    main()
