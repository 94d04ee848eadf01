"""The deliverable step of a job, with the real exporter and report card on a tiny finished run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.jobs.deliver import deliver
from models.errors import ExportError
from tests.models.fixtures.run_fixture import build_run

SOURCE = {"recommendation_id": "rec_7", "rank": 2, "meta_learner_version": 3, "predicted_ratio": 0.96}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_run(tmp_path_factory.mktemp("deliver"))


def test_deliver_exports_verifies_and_builds_the_card(run: Path) -> None:
    stages: list[str] = []
    report = json.loads((run / "report.json").read_text())
    out = deliver(run, report, recommendation=SOURCE, progress=lambda p: stages.append(p["stage"]))
    assert out["status"] == "ready" and out["report_card"]
    assert out["offered"] == ["hf", "onnx", "onnx_int8"] and "error" not in out
    assert stages == ["export", "report_card"]
    assert (run / "export" / "model.onnx").is_file() and (run / "export" / "model.int8.onnx").is_file()
    card = json.loads((run / "report_card.json").read_text())
    assert card["recommendation"] == SOURCE and card["config_source"] == "recommendation"
    assert out["summary"] == card["summary"] and out["summary"]["ratio"] is not None
    assert json.loads((run / "report.json").read_text())["recommendation"] == SOURCE  # the run folder says it
    assert "<script src" not in (run / "report_card.html").read_text()


def test_a_failing_export_is_recorded_and_the_card_still_built(run: Path) -> None:
    def broken(run_dir: Path) -> dict:
        raise ExportError("the ONNX exporter refused the graph")

    stages: list[dict] = []
    out = deliver(run, {}, export=broken, progress=stages.append)
    assert out["status"] == "failed" and out["error"] == {
        "code": "export_failed",
        "message": "the ONNX exporter refused the graph",
    }
    assert out["report_card"]  # the card is still there, for what was trained
    assert {"stage": "export_failed", "error": "the ONNX exporter refused the graph"} in stages


def test_a_failing_report_card_is_recorded_not_raised(run: Path) -> None:
    def broken_card(run_dir: Path, **_: object) -> dict:
        raise RuntimeError("disk full")

    out = deliver(run, {}, export=lambda run_dir: {"offered": ["hf", "onnx"]}, report_card=broken_card)
    assert out["status"] == "failed" and not out["report_card"]
    assert out["error"] == {"code": "report_card_failed", "message": "report card: RuntimeError: disk full"}
