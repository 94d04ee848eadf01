"""GPU check of the local executor: a job asking for a GPU is left alone by a CPU-only worker, claimed
by a worker that has one, and trained by the real engine in a child process on CUDA.

The device machines reach no registry and hold neither MiniLM nor the data packages, so this
check builds a tiny random BERT teacher (with a WordPiece vocabulary from the data) under a model
root and registers the dataset from a CSV without embedding meta-features.

Run:  python bench/service_gpu_worker.py DATA.csv [--require-gpu] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.domain import Dataset, JobStatus, utcnow  # noqa: E402
from app.jobs.dispatcher import Dispatcher  # noqa: E402
from app.jobs.local import ProcessBackend, detect_gpu  # noqa: E402
from app.schemas.jobs import JobCreate  # noqa: E402
from app.services.container import Services  # noqa: E402
from app.settings import Settings  # noqa: E402


def tiny_teacher(folder: Path, texts: list[str]) -> Path:
    """A random 4-layer BERT (hidden 64) with a WordPiece vocabulary of the data's words."""
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    words = sorted({w for t in texts for w in re.findall(r"[a-z0-9]+|[^\sa-z0-9]", t.lower())})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n"
    )
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=128,
    )
    BertForMaskedLM(config).bert.save_pretrained(folder)  # an encoder without a task head
    tokenizer.save_pretrained(folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("csv", type=Path)
    parser.add_argument("--require-gpu", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    has_gpu = detect_gpu()
    if args.require_gpu and not has_gpu:
        raise SystemExit("no GPU (nvidia-smi) on this machine")
    from models.data import load_dataset

    result: dict[str, object] = {"nvidia_smi": has_gpu}
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        root = Path(tmp) / "models"
        data = load_dataset(args.csv)
        teacher = tiny_teacher(root / "tiny-bert", [e.text for e in (*data.train, *data.dev)])
        settings = Settings(
            data_dir=Path(tmp) / "data",
            model_roots=(root,),
            executor="local",
            embedded_worker=False,
            meta_learner={"embeddings": "off", "use_shipped": False, "auto_refit_every": 0},
        )
        services = Services.create(settings)
        dataset = services.store.datasets.create(
            Dataset(
                id=services.store.datasets.new_id(),
                name="polarity",
                source="upload",
                builtin_name=None,
                filename=args.csv.name,
                digest=data.digest(),
                task_kind=data.task_kind,
                num_labels=data.num_labels,
                labels=list(data.label_names),
                n_train=len(data.train),
                n_dev=len(data.dev),
                options={},
                meta_features={},
                created_at=utcnow(),
            ),
            str(args.csv.resolve()),
        )
        job, _ = services.jobs.submit(
            JobCreate.model_validate(
                {
                    "dataset_id": dataset.id,
                    "teacher": str(teacher),
                    "student": {"num_layers": 2},
                    "kd_config": {
                        "intermediate": {"loss": "mi", "alpha": 0.9},
                        "training": {"epochs": 2, "batch_size": 16, "max_length": 32},
                    },
                    "teacher_training": {"epochs": 2, "batch_size": 16, "max_length": 32},
                    "measure_latency": False,
                    "resources": {"gpu": has_gpu},
                }
            )
        )
        if has_gpu:  # a worker without a GPU must pass over the job
            Dispatcher(services.store, settings, ProcessBackend(gpu_ok=False)).tick()
            result["cpu_worker_left_gpu_job_queued"] = (
                services.store.jobs.get(job.id).status == JobStatus.QUEUED
            )
        start = time.perf_counter()
        Dispatcher(services.store, settings, ProcessBackend(gpu_ok=has_gpu)).run_until_idle(timeout=900)
        done = services.store.jobs.get(job.id)
        report = done.result or {}
        result.update(
            status=done.status.value,
            error=done.error_code and f"{done.error_code}: {done.error_message}",
            wall_s=round(time.perf_counter() - start, 1),
            device=report.get("device"),
            gpu=(report.get("hardware") or {}).get("gpu"),
            ratio=report.get("ratio"),
            student_score=report.get("student_score"),
            teacher_score=report.get("teacher_score"),
            sweep_records=services.store.sweep_records.list(job_id=job.id)[1],
            log_tail=services.artifacts.log_tail(job.id, 15) if done.status != JobStatus.SUCCEEDED else "",
        )
        services.close()
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)
    ok = result["status"] == "succeeded" and result.get("cpu_worker_left_gpu_job_queued", True)
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
