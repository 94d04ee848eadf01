"""A run's served files name no absolute path of the machine (issue 18): report.json,
report_card.json/.html and export.json carry relative names; the local locations a later export
needs are in run_paths.json, which the service never serves."""

import json

import pytest

from models.config import DistillSpec, KDConfig, StudentSpec
from models.export import export_student
from models.export_runtime import RUN_PATHS, SpeedOptions, read_report
from models.pipeline import portable_path, portable_report, run_distillation
from models.report_card import build_report_card

SERVED = ("report.json", "report_card.json", "report_card.html", "export/export.json")


@pytest.fixture(scope="module")
def delivered(tmp_path_factory):
    """A real (tiny) run on an uploaded-style CSV under a "data dir", exported and carded."""
    from models.data import load_dataset

    data_dir = tmp_path_factory.mktemp("server-data-dir")
    source = load_dataset("rt_polarity_200")
    lines = ["text,label"] + [
        '"{}",{}'.format(e.text.replace('"', '""'), e.label) for e in [*source.train, *source.dev]
    ]
    csv = data_dir / "datasets" / "upload-1234.csv"
    csv.parent.mkdir(parents=True)
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    spec = DistillSpec(
        dataset=str(csv),
        teacher="minilm-l6",
        student=StudentSpec(num_layers=1),
        kd_config=KDConfig.from_dict({"training": {"epochs": 1, "batch_size": 32, "max_length": 32}}),
        teacher_training={"epochs": 1, "batch_size": 32, "max_length": 32, "learning_rate": 1e-4},
        measure_latency=False,
    )
    run = data_dir / "artifacts" / "jobs" / "job-1234"
    report = run_distillation(spec, run, cache_dir=data_dir / "cache", device="cpu")
    export_student(run)
    build_report_card(run, speed=SpeedOptions(threads=1, latency_examples=4, throughput_batches=1))
    return data_dir, run, report


@pytest.mark.slow  # a real run, export and card: about 40 s of CPU (the API-level check runs always)
def test_served_files_carry_no_absolute_path(delivered):
    data_dir, run, report = delivered
    for name in SERVED:
        text = (run / name).read_text()
        assert str(data_dir) not in text, name
        assert str(data_dir.resolve()) not in text, name
    saved = json.loads((run / "report.json").read_text())
    assert saved["spec"]["dataset"] == "upload-1234.csv"
    assert "teacher_path" not in saved and report == saved  # the job's result is the portable report
    card = json.loads((run / "report_card.json").read_text())
    assert card["run_dir"] == "job-1234" and card["models"]["student"]["path"] == "student"
    assert card["models"]["teacher"]["available"]  # found through run_paths.json


@pytest.mark.slow
def test_local_paths_stay_in_the_unserved_run_paths_file(delivered):
    data_dir, run, _ = delivered
    local = json.loads((run / RUN_PATHS).read_text())
    assert local["dataset"] == str(data_dir / "datasets" / "upload-1234.csv")
    assert read_report(run)["local_paths"] == local


def test_portable_path_rules(tmp_path):
    anchors = {tmp_path / "run": ".", tmp_path / "cache": "cache"}
    assert portable_path(str(tmp_path / "cache" / "teachers" / "ab12"), anchors) == "cache/teachers/ab12"
    assert portable_path(str(tmp_path / "run" / "student"), anchors) == "./student"
    assert portable_path(str(tmp_path / "elsewhere" / "data.csv"), anchors) == "data.csv"
    assert portable_path("rt_polarity_200", anchors) == "rt_polarity_200"
    report = {
        "spec": {"dataset": "/srv/x/d.csv", "teacher": "/srv/models/t", "student": {"checkpoint": None}},
        "dataset": {"label_names": ["/r/news", "/r/sports"]},  # data that only looks like paths
        "teacher": {"name": "/srv/models/t"},
    }
    out = portable_report(report, anchors)
    assert out["spec"]["dataset"] == "d.csv" and out["teacher"]["name"] == "t"
    assert out["dataset"]["label_names"] == ["/r/news", "/r/sports"]
