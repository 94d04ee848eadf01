"""Export of the student to ONNX and dynamic int8: round trip, verification, and reported failures."""

import json
import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from app.cli import cli
from models.errors import ExportError
from models.export import ExportThresholds, compare, export_student, read_export
from tests.models.fixtures.run_fixture import build_run


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    run = build_run(tmp_path_factory.mktemp("export"))
    return run, export_student(run)


def _copy(run, tmp_path):
    """A private copy of the module's run (tests that break or re-export must not touch the shared one)."""
    dst = tmp_path / "run"
    shutil.copytree(run, dst)
    return dst


def test_onnx_logits_match_pytorch_with_dynamic_batch_and_length(exported):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from models.export_runtime import onnx_session

    run, _ = exported
    model = AutoModelForSequenceClassification.from_pretrained(run / "student", local_files_only=True).eval()
    tok = AutoTokenizer.from_pretrained(run / "export", local_files_only=True)  # the export's own tokenizer
    session = onnx_session(run / "export" / "model.onnx")
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask", "token_type_ids"]
    for texts in (["one"], ["a film", "an unexpectedly long and winding review of a very slow film", "ok"]):
        enc = tok(texts, padding=True, return_tensors="np")
        onnx_logits = session.run(["logits"], {k: enc[k].astype(np.int64) for k in enc})[0]
        with torch.no_grad():
            torch_logits = model(**{k: torch.from_numpy(v) for k, v in enc.items()}).logits.numpy()
        assert onnx_logits.shape == (len(texts), 2)
        np.testing.assert_allclose(onnx_logits, torch_logits, atol=1e-4, rtol=0)


def test_export_record_reports_verification_of_both_variants(exported):
    run, record = exported
    assert record == read_export(run)
    assert record["status"] == "ok" and record["verified"] is True
    assert record["offered"] == ["hf", "onnx", "onnx_int8"]
    assert record["int8_quantization"] == {"weights": "int8", "reduce_range": True, "per_channel": True}
    ver = record["verification"]
    assert ver["n_examples"] == 30 and ver["dataset_digest_matches"] is True
    fp32, int8 = ver["variants"]["onnx"], ver["variants"]["onnx_int8"]
    assert fp32["max_abs_logit_diff"] < 1e-4 and fp32["agreement"] == 1.0 and fp32["metric_delta"] == 0.0
    assert 0.0 <= int8["agreement"] <= 1.0 and int8["passed"] is True
    assert int8["agreement"] >= ExportThresholds().int8_min_agreement
    assert int8["max_abs_logit_diff"] > fp32["max_abs_logit_diff"]  # quantisation really changed the weights
    sizes = record["sizes_bytes"]
    assert sizes["onnx_int8"] < sizes["onnx"] / 2  # int8 weights: about a quarter of fp32
    assert (run / "export" / "tokenizer.json").is_file()
    assert json.loads((run / "export" / "config.json").read_text())["id2label"] == {"0": "neg", "1": "pos"}


def _weight_scale_sizes(path) -> set[int]:
    """Element counts of the int8 model's weight scales (1: per matrix; > 1: per output channel)."""
    import onnx

    model = onnx.load(str(path))
    return {
        int(np.prod(t.dims)) if t.dims else 1
        for t in model.graph.initializer
        if t.name.endswith("_scale") and t.data_type == onnx.TensorProto.FLOAT
    }


def test_int8_scales_are_per_channel_by_default_and_per_tensor_on_request(exported, tmp_path):
    run, _ = exported
    per_channel = _weight_scale_sizes(run / "export" / "model.int8.onnx")
    assert max(per_channel) > 1  # one scale per output channel of a weight matrix
    other = _copy(run, tmp_path)
    record = export_student(other, per_channel=False, max_examples=30)
    assert record["int8_quantization"]["per_channel"] is False and record["status"] == "ok"
    assert _weight_scale_sizes(other / "export" / "model.int8.onnx") == {1}


def test_missing_student_raises_and_is_recorded(exported, tmp_path):
    run = _copy(exported[0], tmp_path)
    shutil.rmtree(run / "student")
    with pytest.raises(ExportError, match="no student to export"):
        export_student(run)
    record = read_export(run)
    assert record["status"] == "failed" and "no student" in record["error"] and record["offered"] == []
    assert not (run / "export" / "model.onnx").exists()  # the earlier export's model is not left behind


def test_corrupted_student_weights_raise(exported, tmp_path):
    run = _copy(exported[0], tmp_path)
    (run / "student" / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ExportError, match="cannot load the student"):
        export_student(run)


def test_run_without_report_raises_export_error(tmp_path):
    with pytest.raises(ExportError, match="no report.json"):
        export_student(tmp_path)
    assert not (tmp_path / "export").exists()  # not a run: nothing written


def test_failed_verification_is_reported_and_the_variant_withdrawn(exported, tmp_path):
    run = _copy(exported[0], tmp_path)
    unreachable = ExportThresholds(int8_min_agreement=1.01)
    with pytest.raises(ExportError, match="onnx_int8: agreement with PyTorch"):
        export_student(run, thresholds=unreachable)
    record = read_export(run)
    assert record["status"] == "failed" and record["offered"] == ["hf", "onnx"]
    assert record["verification"]["variants"]["onnx_int8"]["passed"] is False
    assert not (run / "export" / "model.int8.onnx").exists()
    assert (run / "export" / "model.onnx").is_file()


def test_compare_regression_uses_relative_rmse():
    labels = np.linspace(0.0, 1.0, 50)
    reference = labels.reshape(-1, 1).astype(np.float32)
    close = compare(reference, reference + 0.001, labels, "regression", True, ExportThresholds())
    assert close["passed"] and close["correlation"] == pytest.approx(1.0)
    assert close["relative_rmse"] == pytest.approx(0.001 / labels.std(), rel=1e-3)
    noisy = reference + np.random.default_rng(0).normal(0, 0.1, reference.shape).astype(np.float32)
    far = compare(reference, noisy, labels, "regression", True, ExportThresholds())
    assert not far["passed"] and "RMSE" in far["failures"][0]
    fp32 = compare(reference, reference + 0.01, labels, "regression", False, ExportThresholds())
    assert not fp32["passed"] and "max abs logit diff" in fp32["failures"][0]


def test_cli_export_and_its_failure_exit_code(exported, tmp_path):
    run = _copy(exported[0], tmp_path)
    ok = CliRunner().invoke(cli, ["export", str(run), "--no-report-card", "--no-int8"])
    assert ok.exit_code == 0, ok.output
    assert read_export(run)["offered"] == ["hf", "onnx"]
    shutil.rmtree(run / "student")
    failed = CliRunner().invoke(cli, ["export", str(run), "--no-report-card"])
    assert failed.exit_code == 5
    assert "no student to export" in failed.output
