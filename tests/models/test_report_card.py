"""The report card: every section, numbers checked independently, self-contained HTML, failures shown."""

import json
import re
import shutil
import time

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from app.cli import cli
from models.errors import AssetMissingError, ExportError
from models.export import ExportThresholds, export_student
from models.export_runtime import SpeedOptions
from models.report_card import ROLES, SECTIONS, build_report_card, expected_calibration_error
from models.report_card_html import SECTION_TITLES
from tests.models.fixtures.run_fixture import build_run

FAST = SpeedOptions(latency_examples=4, throughput_batches=1, warmup=1)
RECOMMENDATION = {
    "recommendation_id": "rec_42",
    "rank": 1,
    "predicted_ratio": 0.97,
    "meta_learner_version": 3,
}
CARD_KEYS = {
    "schema_version",
    "run_dir",
    "created_at",
    "sections",
    "dataset",
    "metric",
    "summary",
    "models",
    "calibration",
    "measurement",
    "learning_curves",
    "config",
    "config_source",
    "recommendation",
    "export",
    "training",
    "warnings",
}
MODEL_KEYS = {
    "score",
    "metrics",
    "ratio",
    "agreement_with_teacher",
    "parameters",
    "file_size_bytes",
    "latency_ms_batch1",
    "throughput_batch32",
    "speedup_batch1",
}


@pytest.fixture(scope="module")
def carded(tmp_path_factory):
    run = build_run(tmp_path_factory.mktemp("card"))
    export_student(run)
    return run, build_report_card(run, recommendation=RECOMMENDATION, speed=FAST)


def _copy(run, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(run, dst)
    return dst


def test_card_json_has_every_section_and_model(carded):
    run, card = carded
    assert card.keys() >= CARD_KEYS
    assert json.loads((run / "report_card.json").read_text()) == card
    assert card["sections"] == list(SECTIONS)
    assert list(card["models"]) == list(ROLES)
    for role, entry in card["models"].items():
        assert entry["available"], (role, entry.get("note"))
        assert entry.keys() >= MODEL_KEYS, role
        assert (
            entry["latency_ms_batch1"] > 0
            and entry["throughput_batch32"] > 0
            and entry["file_size_bytes"] > 0
        )
        assert 0.0 <= entry["ece"] <= 1.0
        assert sum(map(sum, entry["confusion_matrix"])) == card["dataset"]["n_dev"] == 30
        assert set(entry["per_class"]) == {"neg", "pos"}
        assert sum(c["support"] for c in entry["per_class"].values()) == 30
    teacher, student = card["models"]["teacher"], card["models"]["student"]
    assert (
        teacher["ratio"] == 1.0
        and teacher["agreement_with_teacher"] == 1.0
        and teacher["speedup_batch1"] == 1.0
    )
    assert student["ratio"] == pytest.approx(student["score"] / teacher["score"])
    assert student["parameters"] < teacher["parameters"]
    assert card["models"]["student_onnx"]["metrics"] == student["metrics"]  # fp32 ONNX reproduces PyTorch
    assert card["models"]["student_int8"]["file_size_bytes"] < student["file_size_bytes"] / 2
    assert card["summary"]["kd_gain_over_no_kd"] == pytest.approx(
        student["score"] - card["models"]["no_kd_student"]["score"]
    )
    assert card["config_source"] == "recommendation" and card["recommendation"] == RECOMMENDATION
    assert card["config"]["kd_config"]["intermediate"]["loss"] == "mi"
    assert card["export"]["status"] == "ok" and card["learning_curves"]["available"]
    assert card["warnings"] == []


def test_card_numbers_match_an_independent_evaluation(carded):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from models.data import load_dataset

    run, card = carded
    dev = load_dataset("rt_polarity_200").dev
    model = AutoModelForSequenceClassification.from_pretrained(run / "student", local_files_only=True).eval()
    tok = AutoTokenizer.from_pretrained(run / "student", local_files_only=True)
    with torch.no_grad():
        logits = model(
            **tok([e.text for e in dev], truncation=True, max_length=32, padding=True, return_tensors="pt")
        ).logits.numpy()
    labels = np.array([["neg", "pos"].index(e.label) for e in dev])
    student = card["models"]["student"]
    assert student["score"] == pytest.approx(float(np.mean(logits.argmax(-1) == labels)))
    tp = int(np.sum((logits.argmax(-1) == 1) & (labels == 1)))
    assert student["confusion_matrix"][1][1] == tp
    assert student["ece"] == pytest.approx(expected_calibration_error(logits, labels)[0], abs=1e-6)


def test_ece_matches_a_hand_computed_value():
    # max probabilities 0.9 (right), 0.9 (wrong), 0.62 (right), 0.58 (wrong); each in its own 1/15-wide bin
    # except the two 0.9s: ECE = 2/4*|0.5-0.9| + 1/4*|1-0.62| + 1/4*|0-0.58| = 0.2 + 0.095 + 0.145
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.38, 0.62], [0.58, 0.42]])
    labels = np.array([0, 1, 1, 1])
    ece, bins = expected_calibration_error(np.log(probs), labels)
    assert ece == pytest.approx(0.44)
    assert [b["count"] for b in bins] == [1, 1, 2]
    perfect, _ = expected_calibration_error(np.log(np.array([[1.0 - 1e-9, 1e-9]] * 3)), np.zeros(3, int))
    assert perfect == pytest.approx(0.0, abs=1e-6)


def test_html_is_self_contained_and_has_every_section(carded):
    run, _ = carded
    html = (run / "report_card.html").read_text(encoding="utf-8")
    for key, title in SECTION_TITLES.items():
        assert f"id='{key}'" in html and f"<h2>{title}</h2>" in html
    assert set(SECTION_TITLES) == set(SECTIONS)
    assert "http://" not in html and "https://" not in html and "<script" not in html.lower()
    sources = re.findall(r"src='([^']*)'", html)
    assert len(sources) == 2 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "rec_42" in html and "Predicted ratio 0.970" in html  # which recommendation it came from


def test_card_without_baseline_or_export_says_why(carded, tmp_path):
    run = _copy(carded[0], tmp_path)
    shutil.rmtree(run / "student_no_kd")
    shutil.rmtree(run / "export")
    report = json.loads((run / "report.json").read_text())
    report["artifacts"]["no_kd_student"] = None
    (run / "report.json").write_text(json.dumps(report))
    card = build_report_card(run, speed=FAST)
    models = card["models"]
    assert not models["no_kd_student"]["available"] and "not trained" in models["no_kd_student"]["note"]
    assert not models["student_int8"]["available"] and "not exported" in models["student_int8"]["note"]
    assert card["summary"]["no_kd_score"] is None and card["export"] == {"status": "not_exported"}
    assert card["config_source"].startswith("given by the user")
    html = (run / "report_card.html").read_text()
    assert all(f"<h2>{t}</h2>" in html for t in SECTION_TITLES.values())


def test_failed_export_is_shown_on_the_card(carded, tmp_path):
    run = _copy(carded[0], tmp_path)
    with pytest.raises(ExportError):
        export_student(run, thresholds=ExportThresholds(int8_min_agreement=1.01))
    card = build_report_card(run, speed=FAST)
    assert card["export"]["status"] == "failed"
    assert any(w.startswith("export failed") for w in card["warnings"])
    assert not card["models"]["student_int8"]["available"]
    assert "not offered" in card["models"]["student_int8"]["note"]
    assert card["models"]["student_onnx"]["available"]  # fp32 still passed and is offered
    assert "export failed" in (run / "report_card.html").read_text()


def test_missing_teacher_is_a_clear_error(carded, tmp_path):
    run = _copy(carded[0], tmp_path)
    report = json.loads((run / "report.json").read_text())
    report["teacher_path"] = str(tmp_path / "gone")
    (run / "report.json").write_text(json.dumps(report))
    with pytest.raises(AssetMissingError, match="needs the run's fine-tuned teacher"):
        build_report_card(run, speed=FAST)


def test_regression_card_skips_ece_and_reports_correlation(tmp_path):
    run = build_run(tmp_path, no_kd=False, task_kind="regression")
    export_student(run)
    card = build_report_card(run, speed=FAST)
    assert card["metric"] == "pearson" and card["calibration"]["method"] is None
    student = card["models"]["student"]
    assert "ece" not in student and "confusion_matrix" not in student
    assert -1.0 <= student["agreement_with_teacher"] <= 1.0 and student["mean_abs_diff_from_teacher"] >= 0
    assert card["models"]["student_int8"]["available"]
    html = (run / "report_card.html").read_text()
    assert "skipped for regression" in html and "https://" not in html


def test_cli_report_card(carded, tmp_path):
    run = _copy(carded[0], tmp_path)
    (run / "report_card.html").unlink()
    rec = tmp_path / "rec.json"
    rec.write_text(json.dumps(RECOMMENDATION))
    result = CliRunner().invoke(
        cli,
        [
            "report-card",
            str(run),
            "--recommendation",
            str(rec),
            "--latency-examples",
            "2",
            "--throughput-batches",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads((run / "report_card.json").read_text())["recommendation"] == RECOMMENDATION
    missing = CliRunner().invoke(cli, ["report-card", str(tmp_path / "nowhere")])
    assert missing.exit_code == 3 and "no report.json" in missing.output


def test_speeds_are_measured_side_by_side():
    """Models take turns call by call (rotating order), so a slow spell hits them all alike."""
    from models.export_runtime import SpeedInputs, measure_speeds

    calls = []

    def predictor(role, cost_s):
        def predict(batch):
            calls.append(role)
            time.sleep(cost_s)
            return np.zeros((len(batch["input_ids"]), 2))

        return predict

    single = {"input_ids": [[1, 2]]}
    batch = {"input_ids": [[1, 2]] * 4}
    opts = SpeedOptions(latency_examples=6, throughput_batches=2, batch_size=4, warmup=1)
    out = measure_speeds(
        {
            "slow": SpeedInputs(predictor("slow", 0.004), [single], [batch]),
            "fast": SpeedInputs(predictor("fast", 0.001), [single], [batch]),
        },
        opts,
    )
    timed = calls[4:]  # after each model's warm-up (1 single + 1 batch)
    assert timed[:12] == ["slow", "fast", "fast", "slow"] * 3  # latency turns, order rotating
    assert timed[12:] == ["slow", "fast", "fast", "slow"]  # throughput turns
    assert out["slow"]["latency_ms_batch1"] > out["fast"]["latency_ms_batch1"] >= 1.0
    assert out["fast"]["throughput_batch32"] > out["slow"]["throughput_batch32"]
    assert out["fast"]["throughput_batch_size"] == 4
    with pytest.raises(ValueError, match="slow has no example"):
        measure_speeds({"slow": SpeedInputs(predictor("slow", 0), [], [batch])}, opts)
