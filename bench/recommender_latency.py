"""Latency of ``MetaLearner.recommend()`` for a dataset whose meta-features are known.

    python bench/recommender_latency.py --records history.parquet           # fit, then measure
    python bench/recommender_latency.py --artifact meta.skops --records history.parquet

The meta-features, teacher and student come from the first record. Measured: the first call
(which builds and caches the candidate table of that teacher, student and task kind) and the
p50/p99 of ``--calls`` later calls, each with k=5, for two candidate spaces: what this machine's
engine can run (default availability) and every component available (the largest space). Goal:
p99 under 20 ms. Saves JSON (with the command line) under bench/results/.
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

import numpy as np  # noqa: E402
import sklearn.ensemble  # noqa: E402, F401  (loads OpenMP before the thread limit is set)
from threadpoolctl import threadpool_limits  # noqa: E402

from models.availability import Availability, component_availability  # noqa: E402
from recommender import MetaLearner, load_meta_learner, read_records  # noqa: E402


def measure(learner: MetaLearner, record, calls: int) -> dict:
    kind = "regression" if record.meta_features.get("is_regression") else "classification"
    args = (dict(record.meta_features), record.teacher, record.student)
    start = time.perf_counter()
    learner.recommend(*args, k=5, task_kind=kind)
    first = time.perf_counter() - start
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        learner.recommend(*args, k=5, task_kind=kind)
        times.append(time.perf_counter() - start)
    ms = 1000 * np.array(times)
    table, _ = learner.candidate_table(record.teacher, record.student, kind)
    return {
        "n_candidates": len(table.configs),
        "first_call_ms": round(1000 * first, 2),
        "calls": calls,
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "max_ms": round(float(ms.max()), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", required=True, help="records to fit on (and to take the query from)")
    parser.add_argument("--artifact", default=None, help="measure a saved artifact instead of fitting")
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--max-iter", type=int, default=200)
    parser.add_argument("--tag", default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.calls < 200:
        parser.error("--calls must be at least 200")

    records = read_records(args.records)
    with threadpool_limits(1):
        learner = (
            load_meta_learner(args.artifact)
            if args.artifact
            else MetaLearner(max_iter=args.max_iter).fit(records)
        )
        engine = component_availability()
        everything = {k: Availability(True, "assumed available for the benchmark") for k in engine}
        results = {}
        for name, report in (("engine_default", engine), ("all_components", everything)):
            learner.set_params(availability=report)  # drops the cached candidate tables
            results[name] = measure(learner, records[0], args.calls)
            print(f"{name}: {results[name]}")
    tag = args.tag or Path(args.records).stem
    report = {
        "command": shlex.join([sys.executable.rsplit("/", 1)[-1], *sys.argv]),
        "records": str(args.records),
        "artifact": args.artifact,
        "learner_params": {
            k: v for k, v in learner.get_params().items() if k not in ("availability", "base_config", "grid")
        },
        "goal_ms": 20,
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "threads": 1},
        "results": results,
    }
    out = Path(args.out) if args.out else ROOT / "bench" / "results" / f"recommender_latency_{tag}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
