"""Smoke distillation on the real rt_polarity_200 fixture with a 1-layer student derived from MiniLM-L6."""

import json

import pytest
from typer.testing import CliRunner

from app.cli import cli
from models.config import DistillSpec, KDConfig, StudentSpec
from models.pipeline import run_distillation

REPORT_KEYS = {
    "kd_config",
    "teacher_score",
    "student_score",
    "ratio",
    "no_kd_score",
    "parameters",
    "latency_cpu_batch1",
    "wall_time_s",
    "hardware",
    "code_version",
    "teacher",
    "student",
    "metric",
    "dataset",
    "teacher_fine_tuning",
}


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cache = tmp_path_factory.mktemp("cache")
    spec = DistillSpec(
        dataset="rt_polarity_200",
        teacher="minilm-l6",
        student=StudentSpec(num_layers=1),
        train_no_kd_baseline=True,
        kd_config=KDConfig.from_dict(
            {
                "intermediate": {"loss": "mi", "alpha": 0.9, "strategy": "skip"},
                "training": {"epochs": 1, "batch_size": 32, "max_length": 32, "learning_rate": 1e-4},
            }
        ),
        teacher_training={"epochs": 1, "batch_size": 32, "max_length": 32, "learning_rate": 1e-4},
    )
    events = []
    report = run_distillation(spec, out, cache_dir=cache, progress=events.append, device="cpu")
    return out, cache, report, events, spec


def test_smoke_report_is_complete(smoke_run):
    out, _, report, events, _ = smoke_run
    assert report.keys() >= REPORT_KEYS
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["ratio"] == pytest.approx(report["student_score"] / report["teacher_score"])
    assert 0 <= report["student_score"] <= 1 and 0 <= report["no_kd_score"] <= 1
    assert report["parameters"]["student"] < report["parameters"]["teacher"]
    assert report["student"]["num_layers"] == 1 and report["teacher"]["num_layers"] == 6
    lat = report["latency_cpu_batch1"]
    assert lat["teacher_ms_per_example"] > 0 and lat["student_ms_per_example"] > 0
    assert report["teacher_fine_tuning"]["fine_tuned"] is True
    assert (out / "learning_curves.png").stat().st_size > 1000
    assert (out / "student" / "config.json").is_file()
    assert {e["stage"] for e in events} >= {"teacher", "kd", "eval", "no_kd"}


def test_student_folder_loads_and_predicts(smoke_run):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = smoke_run[0]
    model = AutoModelForSequenceClassification.from_pretrained(out / "student", local_files_only=True)
    tok = AutoTokenizer.from_pretrained(out / "student", local_files_only=True)
    logits = model(**tok(["a gripping, funny film"], return_tensors="pt")).logits
    assert logits.shape == (1, 2)
    assert model.config.id2label == {0: "neg", 1: "pos"}


def test_fine_tuned_teacher_is_cached(smoke_run, tmp_path):
    _, cache, report, _, spec = smoke_run
    again = run_distillation(
        spec.model_copy(update={"train_no_kd_baseline": False, "measure_latency": False}),
        tmp_path,
        cache_dir=cache,
        device="cpu",
    )
    assert again["teacher_fine_tuning"]["cached"] is True
    assert again["teacher_score"] == report["teacher_score"]


def test_cli_reports_bad_input_with_exit_code_2(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nonly one class,a\nanother,a\n")
    result = CliRunner().invoke(
        cli, ["distill", "--dataset", str(bad), "--student-layers", "1", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2
    assert "error" in result.output.lower()
    assert not (tmp_path / "o").exists()


def test_cli_needs_one_student_form(tmp_path):
    result = CliRunner().invoke(cli, ["distill", "--dataset", "rt_polarity_200", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "exactly one of --student" in result.output
