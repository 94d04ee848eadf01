"""Leave-one-dataset-out quality of the meta-learner against its baselines, on a records file.

    python bench/recommender_loo.py --records history.parquet            # both targets
    python bench/recommender_loo.py --records paper.parquet --target relative --tag paper

For each dataset the meta-learner and the baselines are fitted on the other datasets; inside each
(dataset, teacher, student) group with at least ``--min-configs`` tried pipelines each method picks
its top pipeline. Reported per method: the mean over groups of picked score / best score, plus the
same for random choice (its exact expectation). Prints a table and saves JSON (with the command
line) under bench/results/. The figure is only as good as the history it is given: say which.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sklearn.ensemble  # noqa: E402, F401  (loads OpenMP before the thread limit is set)
from threadpoolctl import threadpool_limits  # noqa: E402

from recommender import MetaLearner, leave_one_dataset_out, read_records, records_digest  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", required=True, help="records file (.parquet, .csv, .jsonl)")
    parser.add_argument("--target", choices=("relative", "ratio", "both"), default="both")
    parser.add_argument("--min-configs", type=int, default=5)
    parser.add_argument("--max-iter", type=int, default=200)
    parser.add_argument("--exclude-prefix", action="append", default=[], help="meta-feature prefix to drop")
    parser.add_argument("--threads", type=int, default=1, help="OpenMP threads for tree fitting")
    parser.add_argument("--tag", default=None, help="name of the history, used in the output file name")
    parser.add_argument("--note", default="", help="where the history comes from (saved in the JSON)")
    parser.add_argument(
        "--out", default=None, help="JSON path (default bench/results/recommender_loo_<tag>.json)"
    )
    args = parser.parse_args()

    records = read_records(args.records)
    tag = args.tag or Path(args.records).stem
    sources = sorted({r.source for r in records})
    targets = ("relative", "ratio") if args.target == "both" else (args.target,)
    runs = {}
    with threadpool_limits(args.threads):
        for target in targets:
            learner = MetaLearner(
                target=target, max_iter=args.max_iter, exclude_prefixes=tuple(args.exclude_prefix)
            )
            start = time.perf_counter()
            result = leave_one_dataset_out(records, learner=learner, min_configs=args.min_configs)
            result["seconds"] = round(time.perf_counter() - start, 1)
            runs[target] = result
            print(f"target={target}: {result['n_groups']} groups, {result['seconds']} s")
            for name, value in result["summary"].items():
                print(f"  {name:18s} {value:.4f}" if value is not None else f"  {name:18s} n/a")
    best = max(targets, key=lambda t: runs[t]["summary"]["meta_learner"] or 0.0)
    report = {
        "command": shlex.join([sys.executable.rsplit("/", 1)[-1], *sys.argv]),
        "records": str(args.records),
        "records_digest": records_digest(records),
        "n_records": len(records),
        "sources": sources,
        "history_note": args.note or "not given",
        "caveat": "a SYNTHETIC history only checks the plumbing; it is no evidence about KD",
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "threads": args.threads,
        },
        "learner_params": {
            k: v
            for k, v in learner.get_params().items()
            if k not in ("availability", "base_config", "grid", "target")
        },
        "best_target": best,
        "summary": {t: runs[t]["summary"] for t in targets},
        "runs": runs,
    }
    out = Path(args.out) if args.out else ROOT / "bench" / "results" / f"recommender_loo_{tag}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    print(f"best target: {best}; wrote {out}")


if __name__ == "__main__":
    main()
