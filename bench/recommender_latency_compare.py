"""``recommend()`` latency of this tree beside another revision's, on each one's shipped model.

    python bench/recommender_latency_compare.py --rev 0a48b89 --rounds 3

The other revision's code and artifact are exported (``git archive``) to a temporary folder, and
``bench/recommender_latency.py`` of each tree measures its own shipped meta-learner on the
committed records, the two alternating ``--rounds`` times so that a busy machine hurts both alike.
Reported per candidate space: each round's p50/p99 and the median over rounds. Saves JSON under
bench/results/.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RECORDS = "recommender/artifacts/sweep_records.parquet"
ARTIFACT = "recommender/artifacts/meta_learner.skops"


def export(rev: str, dest: Path) -> Path:
    """The revision's recommender, models and bench folders, extracted under ``dest``."""
    data = subprocess.run(
        ["git", "archive", rev, "recommender", "models", "bench"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def measure(tree: Path, calls: int, out: Path) -> dict:
    subprocess.run(
        [sys.executable, str(tree / "bench/recommender_latency.py"), "--records", str(ROOT / RECORDS),
         "--artifact", str(tree / ARTIFACT), "--calls", str(calls), "--out", str(out)],
        check=True, capture_output=True, cwd=tree,
    )  # fmt: skip
    return json.loads(out.read_text())["results"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", required=True, help="the revision to compare with (e.g. before v2)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--out", default=str(ROOT / "bench/results/recommender_latency_side_by_side.json"))
    args = parser.parse_args()
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    rounds: dict[str, list[dict]] = {args.rev: [], "working tree": []}
    with tempfile.TemporaryDirectory() as tmp:
        old = export(args.rev, Path(tmp) / "old")
        for i in range(args.rounds):
            for name, tree in ((args.rev, old), ("working tree", ROOT)):
                rounds[name].append(measure(tree, args.calls, Path(tmp) / f"{i}.json"))
                print(name, i, {k: v["p99_ms"] for k, v in rounds[name][-1].items()})
    summary = {
        name: {
            space: {stat: float(np.median([r[space][stat] for r in runs])) for stat in ("p50_ms", "p99_ms")}
            for space in runs[0]
        }
        for name, runs in rounds.items()
    }
    ratio = {
        space: round(summary["working tree"][space]["p99_ms"] / summary[args.rev][space]["p99_ms"], 2)
        for space in summary[args.rev]
    }
    report = {
        "command": shlex.join(["python", *sys.argv]),
        "head": head.stdout.strip(),
        "compared_with": args.rev,
        "summary_median_over_rounds": summary,
        "p99_ratio_working_tree_over_rev": ratio,
        "rounds": rounds,
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({"summary": summary, "p99 ratio": ratio}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
