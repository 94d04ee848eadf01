"""Knowledge-base runs per hour, measured from the records the builds appended.

A build works one run at a time per worker slot and appends each record as the run finishes, so the
records' ``created_at`` times give the throughput of each session: consecutive records less than
``--gap`` minutes apart belong to one session, whose rate is (records - 1) / (last - first). The
per-run wall time (``wall_time_s``, which includes a teacher fine-tune when the run needed one) is
reported too, with its median and the rate one slot would reach from it.

    python bench/kb_runs_per_hour.py recommender/artifacts/sweep_records.parquet \
        bench/results/kb_noise_records.parquet --out bench/results/kb_runs_per_hour.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def sessions(records: list, gap_s: float) -> list[dict]:
    """Runs per hour of each session (records within ``gap_s`` of the previous one)."""
    stamped = sorted((_time(r.created_at), r) for r in records if r.created_at)
    groups: list[list] = []
    for when, record in stamped:
        if groups and (when - groups[-1][-1][0]).total_seconds() <= gap_s:
            groups[-1].append((when, record))
        else:
            groups.append([(when, record)])
    out = []
    for group in groups:
        span = (group[-1][0] - group[0][0]).total_seconds()
        walls = [r.wall_time_s for _, r in group if r.wall_time_s]
        out.append(
            {
                "start": group[0][0].isoformat(),
                "runs": len(group),
                "span_s": span,
                "runs_per_hour": (len(group) - 1) * 3600 / span if span > 0 else None,
                "median_wall_s": statistics.median(walls) if walls else None,
                "hardware": sorted({r.hardware for _, r in group if r.hardware}),
            }
        )
    return out


def summarize(path: Path, gap_s: float) -> dict:
    from recommender.records import read_records

    records = read_records(path)
    walls = [r.wall_time_s for r in records if r.wall_time_s]
    found = sessions(records, gap_s)
    timed = [s for s in found if s["runs_per_hour"] is not None and s["runs"] >= 5]
    return {
        "records": str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path),
        "n_runs": len(records),
        "median_wall_s": statistics.median(walls) if walls else None,
        "one_slot_runs_per_hour_from_median_wall": 3600 / statistics.median(walls) if walls else None,
        "sessions": found,
        "best_session_runs_per_hour": max((s["runs_per_hour"] for s in timed), default=None),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("records", nargs="+", type=Path)
    parser.add_argument("--gap", type=float, default=30, help="minutes that split sessions")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/kb_runs_per_hour.json")
    args = parser.parse_args()
    doc = {
        "command": shlex.join(["python", "bench/kb_runs_per_hour.py", *sys.argv[1:]]),
        "files": [summarize(p.resolve(), args.gap * 60) for p in args.records],
    }
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    for f in doc["files"]:
        print(f"{f['records']}: {f['n_runs']} runs, median wall {f['median_wall_s']:.0f} s")
        for s in f["sessions"]:
            rate = "-" if s["runs_per_hour"] is None else f"{s['runs_per_hour']:.1f}"
            print(f"  {s['start']}: {s['runs']} runs in {s['span_s'] / 60:.0f} min -> {rate} runs/hour")


if __name__ == "__main__":
    main()
