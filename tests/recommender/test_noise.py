"""Seed noise against pipeline spread, checked against hand-computed figures."""

from __future__ import annotations

import json
import math

import pytest

from models.config import KDConfig, ModelDescriptor, TrainingConfig
from recommender import SweepRecord
from recommender.noise import group_noise, noise_report, write_noise

TEACHER = ModelDescriptor("t", "bert", 6, 384)
STUDENT = ModelDescriptor("s", "bert", 2, 384)
PIPELINES = [KDConfig.model_validate({"intermediate": {"loss": loss}}) for loss in ("none", "pkd")]


def _run(pipeline: int, seed: int, ratio: float, dataset: str = "d") -> SweepRecord:
    base = PIPELINES[pipeline]
    config = base.model_copy(update={"training": TrainingConfig(seed=seed)})
    return SweepRecord(
        dataset_id=dataset, teacher=TEACHER, student=STUDENT, kd_config=config, student_score=ratio,
        teacher_score=1.0, seed=seed, train_examples=170, dev_examples=30,
    )  # fmt: skip


def test_group_noise_matches_hand_computation():
    # pipeline a: 0.8, 0.9 (var 0.005); pipeline b: 0.6, 0.7 (var 0.005); means 0.85 and 0.65
    out = group_noise({"a": [0.8, 0.9], "b": [0.6, 0.7]})
    assert out["seed_std"] == pytest.approx(math.sqrt(0.005))
    assert out["pipeline_spread"] == pytest.approx(math.sqrt(0.02))  # std of (0.85, 0.65)
    assert out["snr"] == pytest.approx(2.0)
    assert out["true_spread"] == pytest.approx(math.sqrt(0.02 - 0.005 / 2))
    assert out["best_pipeline_margin"] == pytest.approx(0.2)
    assert (out["n_pipelines"], out["n_runs"], out["seeds_per_pipeline"]) == (2, 4, 2)


def test_pure_noise_has_no_true_spread():
    out = group_noise({"a": [0.5, 0.9], "b": [0.9, 0.5]})
    assert out["pipeline_spread"] == 0.0 and out["true_snr"] == 0.0 and out["seed_std"] > 0


def test_report_groups_records_by_cell_and_keeps_fidelity(tmp_path):
    records = [_run(p, s, r) for p, s, r in [(0, 1, 0.8), (0, 2, 0.9), (1, 1, 0.6), (1, 2, 0.7)]]
    records.append(_run(0, 1, 0.5, dataset="other"))  # one run: no seed std in that group
    report = noise_report(records)
    by_name = {g["dataset"]: g for g in report["groups"]}
    assert by_name["d"]["snr"] == pytest.approx(2.0)
    assert by_name["d"]["dev_examples"] == 30 and by_name["d"]["epochs"] == 3
    assert by_name["other"]["seed_std"] is None and by_name["other"]["snr"] is None
    assert report["summary"]["n_groups"] == 2 and report["summary"]["n_runs"] == 5
    assert report["summary"]["median_snr"] == pytest.approx(2.0)

    path = tmp_path / "noise.json"
    write_noise(records, path, setting="one", command="kb noise")
    write_noise(records[:2], path, setting="two")
    doc = json.loads(path.read_text())
    assert list(doc["settings"]) == ["one", "two"] and doc["settings"]["one"]["command"] == "kb noise"
