"""``autodistiller meta`` commands, run through Typer's test runner."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from app.commands.meta import cli
from recommender import load_meta_learner, read_records, write_records
from recommender.persistence import sidecar_path
from tests.recommender.conftest import FIXTURES

runner = CliRunner()


@pytest.fixture(scope="module")
def records_file(history, tmp_path_factory):
    return write_records(history, tmp_path_factory.mktemp("cli") / "history.parquet")


def test_import_distiller(tmp_path):
    out = tmp_path / "paper.parquet"
    result = runner.invoke(
        cli,
        [
            "import-distiller",
            "--table",
            str(FIXTURES / "distiller_table.csv"),
            "--features",
            str(FIXTURES / "distiller_features.csv"),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "wrote 7 records (5 datasets" in result.output
    assert [r.dataset_id for r in read_records(out)][:3] == ["mnli", "mnli", "cola"]


def test_import_distiller_reports_bad_input(tmp_path):
    bad = tmp_path / "t.csv"
    bad.write_text("Model,score\nA,1\n")
    result = runner.invoke(
        cli, ["import-distiller", "--table", str(bad), "--out", str(tmp_path / "o.parquet")]
    )
    assert result.exit_code == 1 and "missing columns" in result.output


def test_evaluate_writes_json_with_command_and_png(records_file, tmp_path):
    result = runner.invoke(
        cli, ["evaluate", "--records", str(records_file), "--out", str(tmp_path), "--max-iter", "10"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "loo.json").read_text())
    assert report["command"].startswith("autodistiller") and report["n_datasets"] == 5
    assert set(report["summary"]) == {"meta_learner", "fixed_default", "nearest_datasets", "random"}
    assert (tmp_path / "loo.png").stat().st_size > 1000


def test_refit_saves_a_loadable_artifact(records_file, tmp_path):
    out = tmp_path / "meta.skops"
    result = runner.invoke(
        cli, ["refit", "--records", str(records_file), "--out", str(out), "--max-iter", "10"]
    )
    assert result.exit_code == 0, result.output
    assert load_meta_learner(out).n_records_ == len(read_records(records_file))
    assert json.loads(sidecar_path(out).read_text())["evaluation"] is None


def test_heldout(records_file, tmp_path):
    out = tmp_path / "heldout.json"
    result = runner.invoke(
        cli,
        [
            "heldout",
            "--records",
            str(records_file),
            "--test",
            "syn-0",
            "--k",
            "3",
            "--max-iter",
            "10",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["summary"]["top_k_mean"] is not None
    result = runner.invoke(cli, ["heldout", "--records", str(records_file), "--test", "nope"])
    assert result.exit_code == 2 and "not in the records: nope" in result.output


def test_missing_records_file_is_a_usage_error(tmp_path):
    result = runner.invoke(cli, ["evaluate", "--records", str(tmp_path / "none.parquet")])
    assert result.exit_code == 2 and "records file not found" in result.output
