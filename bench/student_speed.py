"""CPU speed of the derived students against the MiniLM-L6 teacher, timed side by side (issue 7's speed goal).

The quality benchmark (``student_quality.py``) times each run's own models in its report card. This
checks the speed part of its goal alone, on whatever CPU it runs on: the MiniLM-L6 classifier (6
layers) and 3- and 2-layer students derived from it, on the real dev texts of each dataset at the
benchmark's max length, PyTorch fp32 at ``--threads`` threads. Per-example latency at batch 1
(median) and throughput at batch 32 are measured with the report card's own timer
(``models.export_runtime.measure_speeds``: the models take turns call by call, so load from
elsewhere slows them all alike). Speed does not depend on the weights' values, so no training is
needed: the teacher here has MiniLM's pretrained weights and a new head, the students are derived
from it exactly as a distillation run derives them.

    python bench/student_speed.py          # rotten_tomatoes and bbc_news, 3- and 2-layer, 1 thread

Writes ``bench/results/student_speed.json`` (with the command and the machine) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Student vs teacher CPU speed, side by side")
    ap.add_argument("--datasets", nargs="+", default=["rotten_tomatoes", "bbc_news"])
    ap.add_argument("--student-layers", type=int, nargs="+", default=[3, 2])
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--latency-examples", type=int, default=300)
    ap.add_argument("--throughput-batches", type=int, default=10)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "student_speed.json")
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    import torch
    import transformers

    from models.assets import minilm_path
    from models.data import load_dataset
    from models.export_runtime import (
        SpeedInputs,
        SpeedOptions,
        encode_set,
        measure_speeds,
        model_input_names,
        throughput_set,
        torch_predictor,
        torch_threads,
    )
    from models.modeling import (
        count_parameters,
        derive_student,
        evenly_spaced_layers,
        load_classifier,
        load_tokenizer,
    )

    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    opts = SpeedOptions(
        latency_examples=args.latency_examples,
        throughput_batches=args.throughput_batches,
        threads=args.threads,
    )
    tokenizer = load_tokenizer(minilm_path())
    rows = []
    for name in args.datasets:
        dataset = load_dataset(name)
        teacher = load_classifier(minilm_path(), dataset.label_names, dataset.task_kind)
        n_teacher = teacher.config.num_hidden_layers
        models = {"teacher": teacher}
        for k in args.student_layers:
            models[f"{k}-layer"] = derive_student(teacher, evenly_spaced_layers(n_teacher, k))
        names = model_input_names(teacher, tokenizer)
        labels = (dataset.label_names, dataset.task_kind, names)
        dev = list(dataset.dev)
        enc = encode_set(dev, tokenizer, args.max_length, *labels, batch_size=opts.batch_size)
        full = throughput_set(dev, tokenizer, args.max_length, *labels, opts)
        inputs = {
            role: SpeedInputs(torch_predictor(m), enc.singles, full.batches) for role, m in models.items()
        }
        with torch_threads(args.threads):
            speed = measure_speeds(inputs, opts)
        lengths = [int(b["attention_mask"].sum()) for b in enc.singles[: opts.latency_examples]]
        base = speed["teacher"]
        for role, model in models.items():
            s = speed[role]
            rows.append(
                {
                    "dataset": name,
                    "model": role,
                    "layers": model.config.num_hidden_layers,
                    "parameters": count_parameters(model),
                    "latency_ms_batch1": s["latency_ms_batch1"],
                    "throughput_batch32": s["throughput_batch32"],
                    "speedup_batch1": base["latency_ms_batch1"] / s["latency_ms_batch1"],
                    "speedup_batch32": s["throughput_batch32"] / base["throughput_batch32"],
                    "mean_tokens_timed": sum(lengths) / len(lengths),
                }
            )
            print(
                f"{name:16s} {role:8s} {s['latency_ms_batch1']:7.2f} ms  {s['throughput_batch32']:7.1f}/s  "
                f"speed-up b=1 {rows[-1]['speedup_batch1']:.2f}x  b=32 {rows[-1]['speedup_batch32']:.2f}x",
                flush=True,
            )
    record = {
        "command": shlex.join([sys.executable, *sys.argv]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "torch": torch.__version__,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "timer": "models.export_runtime.measure_speeds (side by side, call by call)",
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2))
    print(markdown(rows))
    print(f"saved {args.out}")


def markdown(rows: list[dict]) -> str:
    lines = [
        "| dataset | model | parameters | latency b=1 | speed-up b=1 | throughput b=32 | speed-up b=32 |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['model']} | {r['parameters'] / 1e6:.1f}M | "
            f"{r['latency_ms_batch1']:.2f} ms | "
            f"{r['speedup_batch1']:.2f}× | {r['throughput_batch32']:.1f}/s | {r['speedup_batch32']:.2f}× |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
