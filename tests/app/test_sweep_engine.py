"""``autodistiller sweep`` on the real engine: a two-pipeline sweep on the fixture dataset goes
through the service's queue, lands as sweep records with provenance, and a re-run repeats nothing.
Two 1-layer runs of one epoch at length 32, plus one teacher fine-tuning: about 30 s on 2 cores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

GRID = {
    "intermediate_losses": ["none", "mse"],
    "strategies": ["skip"],
    "kd_losses": ["ce"],
    "mixup": [False],
    "max_pipeline_length": 0,
}


@pytest.fixture(scope="module")
def sweep_args(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    root = tmp_path_factory.mktemp("sweep")
    return [
        "sweep", "--dataset", "rt_polarity_200", "--students", "1", "--budget", "5",
        "--grid", json.dumps(GRID),
        "--epochs", "1", "--max-length", "32", "--batch-size", "32", "--teacher-epochs", "1",
        "--data-dir", str(root / "data"), "--executor", "inline", "--embeddings", "off",
        "--records-out", str(root / "records.parquet"),
    ]  # fmt: skip


def _run(args: list[str]) -> str:
    import torch

    from app.cli import cli

    torch.set_num_threads(1)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def _jobs(args: list[str]) -> int:
    from app.db.engine import Database
    from app.store import Store

    data_dir = Path(args[args.index("--data-dir") + 1])
    db = Database(f"sqlite:///{data_dir / 'autodistiller.db'}")
    try:
        return Store(db).jobs.list(limit=1)[1]
    finally:
        db.dispose()


def test_tiny_sweep_trains_through_the_queue_and_records_each_run(sweep_args: list[str]) -> None:
    from recommender import read_records

    output = _run(sweep_args)
    assert "2 runs, 0 already answered, 2 queued" in output and "succeeded 2" in output
    records = read_records(sweep_args[-1])
    assert len(records) == 2 and _jobs(sweep_args) == 2
    assert sorted(r.kd_config.intermediate.loss for r in records) == ["mse", "none"]
    assert len({r.raw["run_key"] for r in records}) == 2
    for r in records:
        assert r.dataset_id.startswith("rt_polarity_200:") and r.student.num_layers == 1
        assert r.source == "own" and r.seed == 42 and r.code_version and r.hardware and r.created_at
        assert r.kd_config.training.max_length == 32 and 0 < r.ratio < 2 and r.teacher_score > 0
        assert r.meta_features["n_train"] == 170 and r.meta_features["teacher_layers"] == 6


def test_running_the_same_sweep_again_repeats_nothing(sweep_args: list[str]) -> None:
    from recommender import read_records, records_digest

    before = records_digest(read_records(sweep_args[-1]))
    output = _run(sweep_args)
    assert "2 runs, 2 already answered, 0 queued" in output
    assert _jobs(sweep_args) == 2
    assert records_digest(read_records(sweep_args[-1])) == before
