"""int8 weight scales: per output channel vs one per matrix, on real distilled students.

For each finished run directory given (a copy is exported, the run itself is left alone): the
student is exported twice with ``export_student``, once with per-channel and once with per-tensor
int8 weight scales. The bench reports each variant's agreement with the PyTorch student on the full
dev set (classification runs) and its metric delta, then times both int8 models side by side with
the report card's timer (batch 1 latency, batch 32 throughput, 1 thread).

    python bench/int8_scales.py RUN_DIR [RUN_DIR ...]     # e.g. knowledge-base job folders

Writes ``bench/results/int8_scales.json`` with the command and prints a table.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VARIANTS = {"per_channel": True, "per_tensor": False}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", type=Path, nargs="+", help="finished run directories (report.json, student/)")
    ap.add_argument("--latency-examples", type=int, default=200)
    ap.add_argument("--throughput-batches", type=int, default=20)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "int8_scales.json")
    args = ap.parse_args()

    from models.export import ExportThresholds, export_student, read_export
    from models.export_runtime import (
        SpeedInputs,
        SpeedOptions,
        encode_set,
        measure_speeds,
        onnx_predictor,
        onnx_session,
        read_report,
        run_dataset,
        run_max_length,
        throughput_set,
        torch_threads,
    )
    from models.modeling import load_tokenizer

    keep_int8 = ExportThresholds(int8_min_agreement=0.0, int8_max_relative_rmse=float("inf"))
    opts = SpeedOptions(latency_examples=args.latency_examples, throughput_batches=args.throughput_batches)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in args.runs:
            report = read_report(run)
            dataset, _ = run_dataset(report)
            if dataset.task_kind != "classification":
                sys.exit(f"{run}: {dataset.name} is not a classification task (agreement is undefined)")
            student = (report.get("student") or {}).get("name")
            row = {"run": run.name, "dataset": dataset.name, "student": student, "n_dev": 0}
            sessions = {}
            for variant, per_channel in VARIANTS.items():
                copy = Path(tmp) / f"{run.name}-{variant}"
                shutil.copytree(run, copy, ignore=shutil.ignore_patterns("export", "no_kd*", "checkpoint*"))
                # Both variants are kept whatever their agreement (the product's bounds still
                # decide "passed"), so the one that would fail can be timed too.
                export_student(copy, dataset=dataset, per_channel=per_channel, thresholds=keep_int8)
                record = read_export(copy)
                int8 = record["verification"]["variants"]["onnx_int8"]
                row["n_dev"] = record["verification"]["n_examples"]
                row[variant] = {
                    "agreement": int8["agreement"],
                    "metric_delta": int8["metric_delta"],
                    "passed": int8["agreement"] >= ExportThresholds().int8_min_agreement,
                }
                sessions[variant] = onnx_session(copy / "export" / "model.int8.onnx", threads=opts.threads)
            tokenizer = load_tokenizer(Path(tmp) / f"{run.name}-per_channel" / "export")
            names = [i.name for i in sessions["per_channel"].get_inputs()]
            labels = (dataset.label_names, dataset.task_kind, names)
            max_length = run_max_length(report)
            enc = encode_set(list(dataset.dev), tokenizer, max_length, *labels, batch_size=opts.batch_size)
            full = throughput_set(dataset.dev, tokenizer, max_length, *labels, opts)
            with torch_threads(opts.threads):
                speed = measure_speeds(
                    {
                        v: SpeedInputs(onnx_predictor(s), enc.singles, full.batches)
                        for v, s in sessions.items()
                    },
                    opts,
                )
            for variant in VARIANTS:
                row[variant].update(speed[variant])
            rows.append(row)
            pc, pt = row["per_channel"], row["per_tensor"]
            print(
                f"{row['dataset']:24s} agreement per-channel {pc['agreement']:.4f} per-tensor "
                f"{pt['agreement']:.4f}; latency {pc['latency_ms_batch1']:.3f} / "
                f"{pt['latency_ms_batch1']:.3f} ms",
                flush=True,
            )
    record = {
        "command": shlex.join([sys.executable, *sys.argv]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "timer": "models.export_runtime.measure_speeds (side by side), 1 thread, ONNX Runtime",
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2, default=str))
    print(markdown(rows))
    print(f"saved {args.out}")


def markdown(rows: list[dict]) -> str:
    lines = [
        "| dataset | student | dev | agreement per-channel / per-tensor | latency b=1 (ms) "
        "| throughput b=32 (/s) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        pc, pt = r["per_channel"], r["per_tensor"]
        lines.append(
            f"| {r['dataset']} | {r['student']} | {r['n_dev']} | "
            f"{pc['agreement']:.4f} / {pt['agreement']:.4f} | "
            f"{pc['latency_ms_batch1']:.3f} / {pt['latency_ms_batch1']:.3f} | "
            f"{pc['throughput_batch32']:.0f} / {pt['throughput_batch32']:.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
