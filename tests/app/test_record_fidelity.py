"""The sweep record a finished job appends carries its seed and fidelity (what the run saw)."""

from __future__ import annotations

from types import SimpleNamespace

from app.services.records import sweep_record_columns
from models.config import KDConfig, TrainingConfig
from recommender import SweepRecord

DESCRIPTOR = {"family": "bert", "hidden_size": 384, "num_heads": 12, "tokenizer_id": "v"}


def test_record_from_a_report_carries_seed_examples_epochs_and_max_length() -> None:
    config = KDConfig(training=TrainingConfig(epochs=4, max_length=48, seed=3))
    report = {
        "dataset": {"name": "rt_polarity_200", "digest": "ab" * 20, "n_train": 170, "n_dev": 30},
        "teacher": {"name": "minilm-l6", "num_layers": 6, "num_params": 22_700_000, **DESCRIPTOR},
        "student": {"name": "derived:2", "num_layers": 2, "num_params": 15_000_000, **DESCRIPTOR},
        "kd_config": config.model_dump(mode="json"),
        "student_score": 0.7,
        "teacher_score": 0.8,
        "wall_time_s": 12.0,
        "hardware": {"processor": "x86_64", "cpu_count": 2},
        "seed": 3,
    }
    job = SimpleNamespace(id="job1", attempts=1, dataset_id="ds1")
    columns = sweep_record_columns(job, report, None)  # type: ignore[arg-type]
    record = SweepRecord.from_dict(columns["record"])
    assert columns["seed"] == record.seed == 3
    assert record.fidelity() == {"train_examples": 170, "dev_examples": 30, "epochs": 4, "max_length": 48}
    assert record.wall_time_s == 12.0 and record.hardware == "x86_64; 2 cpus"
