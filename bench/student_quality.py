"""Quality of the deliverable student (issue 7): recommended pipeline vs. plain KD vs. no-KD.

MiniLM-L6 teacher (fine-tuned once per dataset, cached) → 3-layer and 2-layer students derived from
it, on the full ``rotten_tomatoes`` and ``bbc_news``. Per dataset and student size:

- ``recommended``: the pipeline the service recommends for this dataset and student (``POST /recommend``
  top 1 from the shipped meta-learner; ``--recommended-config`` fixes one instead), trained together
  with the no-KD baseline (hard labels only, same student, same budget);
- ``plain_kd``: soft cross-entropy KD only (intermediate loss none).

Every variant gets the same training budget (the ``--epochs/--max-length/--batch-size/--lr`` given
here override the config file's ``training`` section). Each run is then exported (ONNX + dynamic
int8, verified on dev) and gets a report card, whose numbers (re-measured on dev; CPU timings at
``--threads`` threads) are what this table shows. Scores are best-epoch dev scores (optimistic: no
separate test split). Goal: the recommended student keeps >= 97 % of the teacher's primary metric,
is >= 1.8x faster on CPU at batch 1 (3-layer), and beats plain KD and no-KD. "speed-up b=1" is the
PyTorch student against the PyTorch teacher (the goal's measure); the ONNX fp32 and int8 speed-ups
are against the same PyTorch teacher, so they include ONNX Runtime's own gain.

    python bench/student_quality.py                         # the full benchmark (hours on a 2-core CPU)
    python bench/student_quality.py --size 200 --epochs 1 --teacher-epochs 1 --max-length 64   # smoke

On a GPU machine without this project's service dependencies, save the service's answers first
(``--recommend-only FILE`` here, ``--recommendations FILE`` there): ``bench/device_bundle.py`` and
``bench/device_student_quality.sh`` do this for the lent GPU machines.

Resumable: finished runs, exports and report cards are kept (``--remeasure`` redoes the exports and
cards without retraining). The datasets can be run one per invocation: the results file keeps the runs
of the datasets not run now (same budget settings), so the table ends whole. Writes
``bench/results/student_quality.json`` (``student_quality_n<size>.json`` with ``--size``), with the
command, and prints a markdown table.
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
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from models.config import DistillSpec, KDConfig, StudentSpec  # noqa: E402
from recommender.sweep_evidence import pipeline_label  # noqa: E402

PLAIN_KD = {
    "intermediate": {"loss": "none"},
    "weights": {"kd": 1.0, "intermediate": 0.0, "hard": 0.0},
    "prediction": {"loss": "ce", "temperature": 1.0},
}
GOAL_RATIO, GOAL_SPEEDUP = 0.97, 1.8


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Deliverable-student quality benchmark")
    ap.add_argument("--datasets", nargs="+", default=["rotten_tomatoes", "bbc_news"])
    ap.add_argument("--student-layers", type=int, nargs="+", default=[3, 2])
    ap.add_argument("--recommended-config", type=Path, help="KD config JSON of the recommended pipeline")
    ap.add_argument(
        "--recommend-only",
        type=Path,
        metavar="FILE",
        help="ask the service for every dataset and student size, save its answers to FILE and stop",
    )
    ap.add_argument(
        "--recommendations",
        type=Path,
        metavar="FILE",
        help="the service's answers saved by --recommend-only (for a machine without the service)",
    )
    ap.add_argument("--size", type=int, help="subsample the training set (smoke runs); default: full")
    ap.add_argument("--seeds", type=int, nargs="+", default=[42])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--teacher-epochs", type=int, default=3)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-4, help="student learning rate")
    ap.add_argument("--teacher-lr", type=float, default=5e-5)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for the latency/throughput timings")
    ap.add_argument("--latency-examples", type=int, default=100)
    ap.add_argument("--throughput-batches", type=int, default=10)
    ap.add_argument("--remeasure", action="store_true", help="redo exports and report cards of finished runs")
    ap.add_argument("--device", help="training device (default: cuda if present); timings are always CPU")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "student_quality")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    return ap.parse_args()


def _with_budget(cfg: dict, args: argparse.Namespace) -> KDConfig:
    """A KD config with this benchmark's training budget (the same for every variant)."""
    training = {
        "epochs": args.epochs,
        "max_length": args.max_length,
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
    }
    return KDConfig.from_dict({**{k: v for k, v in cfg.items() if k != "training"}, "training": training})


def recommended(dataset: str, layers: int, args: argparse.Namespace) -> tuple[dict, dict]:
    """The service's top-ranked pipeline for this dataset and student, and where it came from.

    Goes through the service layer exactly as ``POST /recommend`` does: the dataset is registered
    (meta-features computed), the shipped meta-learner answers. ``--recommended-config`` replaces
    this with a fixed config (recorded as such); ``--recommendations`` reads the answers an earlier
    ``--recommend-only`` saved (the training machine then needs no service dependencies).
    """
    if args.recommended_config:
        return json.loads(args.recommended_config.read_text()), {"source": str(args.recommended_config)}
    if args.recommendations:
        saved = json.loads(args.recommendations.read_text())
        key = f"{dataset} L{layers}"
        if key not in saved:
            sys.exit(f"{args.recommendations} has no recommendation for {key!r}; rerun --recommend-only")
        return saved[key]["kd_config"], {**saved[key]["source"], "saved_in": str(args.recommendations)}
    from app.commands.sweep import local_services
    from app.schemas.recommend import RecommendRequest
    from models.config import StudentSpec

    services = local_services(args.work / "service", executor="inline", own_store=True)
    try:
        services.meta_learners.bootstrap()
        version, _ = services.meta_learners.current()
        ds = services.sweeps.builtin_dataset(dataset)
        req = RecommendRequest(
            dataset_id=ds.id, teacher="minilm-l6", student=StudentSpec(num_layers=layers), k=1
        )
        rec = services.recommend.recommend(req)
        item = rec.items[0]
        return item["kd_config"], {
            "source": "recommender (POST /recommend, top 1)",
            "recommendation_id": rec.id,
            "rank": 1,
            "meta_learner_version": rec.meta_learner_version,
            "meta_learner_records": version.n_records,
            "records_digest": version.records_digest,
            "predicted_ratio": item["predicted_ratio"],
            "interval": item["interval"],
        }
    finally:
        services.close()


def run_one(
    spec: DistillSpec, out: Path, args: argparse.Namespace, recommendation: dict | None = None
) -> dict:
    """Train (unless finished), export and build the report card (unless present); return the card."""
    from models.errors import ExportError
    from models.export import export_student, read_export
    from models.export_runtime import SpeedOptions
    from models.pipeline import run_distillation
    from models.report_card import build_report_card

    if not (out / "report.json").is_file():
        t0 = time.perf_counter()
        run_distillation(spec, out, resume=True, device=args.device, cache_dir=args.work / "cache")
        print(f"  trained {out.name} in {time.perf_counter() - t0:.0f}s", flush=True)
    if args.remeasure or (read_export(out) or {}).get("status") != "ok":
        try:
            export_student(out)
        except ExportError as exc:  # recorded in export.json and on the card; the table shows it
            print(f"  export failed for {out.name}: {exc.message}", flush=True)
    if args.remeasure or not (out / "report_card.json").is_file():
        speed = SpeedOptions(
            latency_examples=args.latency_examples,
            throughput_batches=args.throughput_batches,
            threads=args.threads,
        )
        build_report_card(out, speed=speed, recommendation=recommendation)
    return json.loads((out / "report_card.json").read_text())


def row(card: dict, role: str) -> dict | None:
    """The numbers of one model of a report card (None when the run did not make it)."""
    m = card["models"][role]
    if not m["available"]:
        return None
    return {
        k: m.get(k)
        for k in (
            "score",
            "ratio",
            "agreement_with_teacher",
            "ece",
            "parameters",
            "file_size_bytes",
            "latency_ms_batch1",
            "throughput_batch32",
            "speedup_batch1",
        )
    }


def main() -> None:
    args = parse_args()
    import torch
    import transformers

    transformers.logging.disable_progress_bar()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    if args.recommend_only:
        answers = {}
        for name in args.datasets:
            dataset = f"{name}@{args.size}" if args.size else name
            for layers in args.student_layers:
                config, source = recommended(dataset, layers, args)
                answers[f"{dataset} L{layers}"] = {"kd_config": config, "source": source}
                print(f"{dataset} L{layers}: {pipeline_label(KDConfig.from_dict(config))}", flush=True)
        args.recommend_only.parent.mkdir(parents=True, exist_ok=True)
        args.recommend_only.write_text(json.dumps(answers, indent=2))
        print(f"saved {args.recommend_only}")
        return
    runs, used = [], {}
    for name in args.datasets:
        dataset = f"{name}@{args.size}" if args.size else name
        for layers in args.student_layers:
            rec_config, source = recommended(dataset, layers, args)
            variants = {
                "recommended": _with_budget(rec_config, args),
                "plain_kd": _with_budget(PLAIN_KD, args),
            }
            used[f"{dataset} L{layers}"] = {
                "recommended": variants["recommended"].model_dump(mode="json"),
                "recommendation": source,
                "plain_kd": variants["plain_kd"].model_dump(mode="json"),
            }
            print(f"{dataset} L{layers}: recommended {pipeline_label(variants['recommended'])}", flush=True)
            for seed in args.seeds:
                for variant, cfg in variants.items():
                    cfg = cfg.model_copy(update={"training": cfg.training.model_copy(update={"seed": seed})})
                    spec = DistillSpec(
                        dataset=dataset,
                        teacher="minilm-l6",
                        student=StudentSpec(num_layers=layers),
                        kd_config=cfg,
                        train_no_kd_baseline=variant == "recommended",
                        measure_latency=False,
                        teacher_training={
                            "epochs": args.teacher_epochs,
                            "max_length": args.max_length,
                            "batch_size": args.batch_size,
                            "learning_rate": args.teacher_lr,
                        },
                    )
                    out = args.work / dataset / f"L{layers}-{variant}-{cfg.pipeline_key()[:10]}-s{seed}"
                    print(f"{dataset} L{layers} {variant} seed {seed}", flush=True)
                    card = run_one(spec, out, args, source if variant == "recommended" else None)
                    runs.append(
                        {
                            "dataset": dataset,
                            "student_layers": layers,
                            "variant": variant,
                            "pipeline": pipeline_label(cfg),
                            "seed": seed,
                            "run_dir": str(out),
                            "metric": card["metric"],
                            "teacher": row(card, "teacher"),
                            "student": row(card, "student"),
                            "no_kd_student": row(card, "no_kd_student"),
                            "student_onnx": row(card, "student_onnx"),
                            "student_int8": row(card, "student_int8"),
                            "export": _export_summary(card),
                        }
                    )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / (f"student_quality_n{args.size}.json" if args.size else "student_quality.json")
    command = shlex.join([sys.executable, *sys.argv])
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    measured_now = sorted({r["dataset"] for r in runs})
    earlier = earlier_runs(path, settings, set(measured_now))
    runs = earlier["runs"] + runs
    summary = summarize(runs)
    record = {
        "command": command,
        "commands": earlier["commands"] + [{"command": command, "datasets": measured_now}],
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "settings": settings,
        "configs": {**earlier["configs"], **used},
        "goal": {"ratio": GOAL_RATIO, "speedup_batch1_3_layer": GOAL_SPEEDUP},
        "scores": "best-epoch dev scores, re-measured by the report card (no separate test split)",
        "summary": summary,
        "runs": runs,
    }
    path.write_text(json.dumps(record, indent=2))
    print(markdown(summary))
    print(f"saved {path}")


# Settings that must match for an earlier invocation's runs to share a table with this one's.
SAME_BUDGET = (
    "size",
    "student_layers",
    "seeds",
    "epochs",
    "teacher_epochs",
    "max_length",
    "batch_size",
    "lr",
    "teacher_lr",
    "recommended_config",
    "threads",
    "latency_examples",
    "throughput_batches",
)


def earlier_runs(path: Path, settings: dict, datasets: set[str]) -> dict:
    """Runs of other datasets already in the results file, made with the same budget.

    The full benchmark can then run one dataset per invocation (``--datasets bbc_news``, later
    ``--datasets rotten_tomatoes``, e.g. in different sessions on different machines) and still
    end as one table. Runs of a dataset measured again now are replaced; a file made with another
    budget is not merged (this invocation starts a new table, and says so).
    """
    empty = {"runs": [], "commands": [], "configs": {}}
    if not path.is_file():
        return empty
    old = json.loads(path.read_text())
    mismatch = [k for k in SAME_BUDGET if old.get("settings", {}).get(k) != settings.get(k)]
    if mismatch:
        print(f"{path}: made with other settings ({', '.join(mismatch)}); not merged, replaced", flush=True)
        return empty
    kept = [r for r in old.get("runs", []) if r["dataset"] not in datasets]
    kept_sets = {r["dataset"] for r in kept}
    commands = old.get("commands") or [{"command": old.get("command"), "datasets": sorted(kept_sets)}]
    commands = [c for c in commands if set(c["datasets"]) & kept_sets]
    configs = {k: v for k, v in old.get("configs", {}).items() if k.rsplit(" ", 1)[0] in kept_sets}
    if kept:
        print(f"{path}: kept {len(kept)} earlier runs of {', '.join(sorted(kept_sets))}", flush=True)
    return {"runs": kept, "commands": commands, "configs": configs}


def _export_summary(card: dict) -> dict:
    exp = card["export"]
    int8 = ((exp.get("verification") or {}).get("variants") or {}).get("onnx_int8") or {}
    return {
        "status": exp.get("status"),
        "error": exp.get("error"),
        "int8_agreement": int8.get("agreement"),
        "int8_metric_delta": int8.get("metric_delta"),
    }


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else None


def summarize(runs: list[dict]) -> list[dict]:
    """One line per (dataset, student size): scores of each variant averaged over seeds, and the goals."""
    out = []
    for key in dict.fromkeys((r["dataset"], r["student_layers"]) for r in runs):
        group = [r for r in runs if (r["dataset"], r["student_layers"]) == key]
        rec = [r for r in group if r["variant"] == "recommended"]
        kd = [r for r in group if r["variant"] == "plain_kd"]

        def mean_of(rs, role, field):
            return _mean((r[role] or {}).get(field) for r in rs)

        line = {
            "dataset": key[0],
            "student_layers": key[1],
            "seeds": len(rec),
            "metric": group[0]["metric"],
            "teacher": mean_of(rec, "teacher", "score"),
            "recommended": mean_of(rec, "student", "score"),
            "plain_kd": mean_of(kd, "student", "score"),
            "no_kd": mean_of(rec, "no_kd_student", "score"),
            "int8": mean_of(rec, "student_int8", "score"),
            "ratio": mean_of(rec, "student", "ratio"),
            "speedup_batch1": mean_of(rec, "student", "speedup_batch1"),
            "onnx_speedup_batch1": mean_of(rec, "student_onnx", "speedup_batch1"),
            "int8_speedup_batch1": mean_of(rec, "student_int8", "speedup_batch1"),
            "int8_agreement": _mean(r["export"]["int8_agreement"] for r in rec),
        }
        known = all(
            line[k] is not None for k in ("ratio", "recommended", "plain_kd", "no_kd", "speedup_batch1")
        )
        line["goals"] = (
            None
            if not known
            else {
                "keeps_97_percent": line["ratio"] >= GOAL_RATIO,
                "speedup_1_8x": line["speedup_batch1"] >= GOAL_SPEEDUP if key[1] == 3 else None,
                "beats_plain_kd": line["recommended"] > line["plain_kd"],
                "beats_no_kd": line["recommended"] > line["no_kd"],
            }
        )
        out.append(line)
    return out


def markdown(summary: list[dict]) -> str:
    def f(x, spec=".4f"):
        return "–" if x is None else format(x, spec)

    head = (
        "| dataset | student | teacher | recommended | plain KD | no KD | int8 | ratio | speed-up b=1 | "
        "ONNX fp32 speed-up | int8 speed-up | int8 agreement | goals |"
    )
    lines = [head, "|" + "---|" * 13]
    for s in summary:
        goals = s["goals"]
        verdict = (
            "–"
            if goals is None
            else ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in goals.items() if v is not None)
        )
        lines.append(
            f"| {s['dataset']} | {s['student_layers']}L | {f(s['teacher'])} | {f(s['recommended'])} | "
            f"{f(s['plain_kd'])} | {f(s['no_kd'])} | {f(s['int8'])} | {f(s['ratio'], '.3f')} | "
            f"{f(s['speedup_batch1'], '.2f')}× | {f(s['onnx_speedup_batch1'], '.2f')}× | "
            f"{f(s['int8_speedup_batch1'], '.2f')}× | "
            f"{f(s['int8_agreement'], '.3f')} | {verdict} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
