"""Export the distilled student: ONNX (fp32) and a dynamic-int8 ONNX variant, each verified on the
dev set against the PyTorch student before it is offered.

Writes ``<run>/export/``: ``model.onnx``, ``model.int8.onnx``, the tokenizer and ``config.json``
(labels), and ``export.json`` (what was exported, sizes, verification numbers, thresholds). The
Hugging Face folder is the run's ``student/`` itself.

Verification thresholds (:class:`ExportThresholds`): fp32 ONNX must reproduce the PyTorch logits
within ``1e-3`` (max abs diff over the dev set) and agree on >= 99 % of argmax predictions; int8
must agree on >= 95 % of predictions (classification) or stay within an RMSE of 5 % of the dev
targets' standard deviation of the PyTorch outputs (regression; correlation is reported too, but
a near-constant predictor makes it meaningless as a test). Metric deltas are always reported. A
variant that fails is deleted, ``export.json`` says why (``status: "failed"``), and
:class:`~models.errors.ExportError` is raised: a failed export is reported, never silently skipped.

The int8 variant uses 7-bit weights (``reduce_range``) by default. Without VNNI, x86 CPUs multiply
u8 x s8 with 16-bit intermediate sums that saturate on full-range weights. One tiny regression
student went from 0.18 of the targets' std RMSE to within the 5 % bound on an AVX2-only EPYC. The
model may be deployed on such a CPU even when it is exported elsewhere, so the safe setting is the
default. ``reduce_range=False`` keeps full 8-bit weights for known VNNI hosts.

Weights get one scale per output channel (``per_channel``, the default) rather than one per matrix.
On six knowledge-base students (1 and 2 layers, 3 datasets; ``bench/int8_scales.py``), per-channel
int8 agreed with PyTorch on 98.6 to 100 % of dev predictions, where per-tensor int8 agreed on 94.3 to
98.4 %; timed side by side, per-channel was 4 to 5 % slower at batch 1 and 1 to 3 % lower in
throughput at batch 32. ``per_channel=False`` restores one scale per matrix.

The graph comes from the TorchScript exporter (``torch.onnx.export(..., dynamo=False)``): it works
offline with no extra package, whereas the dynamo exporter needs ``onnxscript``.
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.errors import AutoDistillerError, ExportError
from models.export_runtime import (
    encode_set,
    folder_bytes,
    model_input_names,
    onnx_predictor,
    onnx_session,
    predict_all,
    read_report,
    run_dataset,
    run_max_length,
    torch_predictor,
)
from models.metrics import compute_metrics, primary_metric

ONNX_FILE, INT8_FILE, EXPORT_JSON = "model.onnx", "model.int8.onnx", "export.json"
# Two texts of different lengths, so the traced graph keeps the padding (attention-mask) path.
_TRACE_TEXTS = ["a short one", "a somewhat longer sentence, so that the batch needs padding to trace masks"]


@dataclass(frozen=True)
class ExportThresholds:
    """Verification thresholds; an export below them fails (see the module docstring)."""

    fp32_max_abs_diff: float = 1e-3
    fp32_min_agreement: float = 0.99
    int8_min_agreement: float = 0.95
    int8_max_relative_rmse: float = 0.05  # regression: RMSE(int8 - PyTorch) / std(dev targets)


class _LogitsOnly(nn.Module):
    """Positional tensors in, logits out: the signature the ONNX graph gets."""

    def __init__(self, model: nn.Module, input_names: list[str]) -> None:
        super().__init__()
        self.model, self.input_names = model, input_names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.input_names, tensors, strict=True))).logits  # (B, C)


def export_student(
    run_dir: Path,
    *,
    dataset=None,
    opset: int = 17,
    verify: bool = True,
    int8: bool = True,
    thresholds: ExportThresholds | None = None,
    max_examples: int | None = None,
    reduce_range: bool = True,
    per_channel: bool = True,
) -> dict:
    """Export ``run_dir/student`` to ONNX (and int8) and verify both against PyTorch on the dev set.

    Args:
        run_dir: A finished run (``report.json`` and ``student/``).
        dataset: The run's :class:`~models.data.TextDataset`; reloaded from the run's spec if None.
        opset: ONNX opset version.
        verify: Check each variant on the dev set (skipping leaves ``verified: false`` on record).
        int8: Also write the dynamic-int8 variant.
        thresholds: Verification thresholds (defaults: :class:`ExportThresholds`).
        max_examples: Verify on at most this many dev examples (all if None).
        reduce_range: int8 with 7-bit weights (exact on CPUs without VNNI; see the module notes).
        per_channel: int8 weight scales per output channel (default) instead of per matrix.

    Returns:
        The contents of ``export/export.json``.

    Raises:
        ExportError: The student cannot be loaded or exported, or a variant fails verification.
    """
    run_dir = Path(run_dir)
    thresholds = thresholds or ExportThresholds()
    out = run_dir / "export"
    record = {
        "status": "running",
        "opset": opset,
        "verified": False,
        "thresholds": dataclasses.asdict(thresholds),
        "exporter": "torch.onnx.export (TorchScript, dynamo=False)",
        "int8_quantization": (
            {"weights": "int8", "reduce_range": reduce_range, "per_channel": per_channel} if int8 else None
        ),
        "versions": _versions(),
    }
    try:
        report = read_report(run_dir)
        _clear(out)
        student_dir = run_dir / ((report.get("artifacts") or {}).get("student") or "student")
        model, tokenizer, ref_model = _load_student(student_dir)
        names = model_input_names(model, tokenizer)
        _to_onnx(model, tokenizer, names, out / ONNX_FILE, opset)
        if int8:
            _quantize(out / ONNX_FILE, out / INT8_FILE, reduce_range=reduce_range, per_channel=per_channel)
        tokenizer.save_pretrained(out)
        model.config.to_json_file(out / "config.json")
        files = {"hf": student_dir.name, "onnx": f"export/{ONNX_FILE}"}
        if int8:
            files["onnx_int8"] = f"export/{INT8_FILE}"
        record.update(
            inputs=names,
            outputs=["logits"],
            artifacts=files,
            sizes_bytes=_sizes(run_dir, files),
            dynamic_axes={"batch": 0, "sequence": 1},
        )
        if verify:
            record["verification"] = _verify(
                ref_model, tokenizer, names, out, report, dataset, int8, thresholds, max_examples
            )
            record["verified"] = True
    except ExportError as exc:
        _fail(out, record, exc.message)
        raise
    except AutoDistillerError as exc:
        _fail(out, record, exc.message)
        raise ExportError(f"export of {run_dir} failed: {exc.message}") from exc
    except Exception as exc:  # anything else still fails the export visibly, with its cause
        message = f"export of {run_dir} failed unexpectedly: {type(exc).__name__}: {exc}"
        _fail(out, record, message)
        raise ExportError(message) from exc
    variants = record.get("verification", {}).get("variants", {})
    failures = [f"{variant}: {msg}" for variant, v in variants.items() for msg in v["failures"]]
    if failures:
        for variant, v in variants.items():
            if v["failures"]:
                (out / Path(record["artifacts"][variant]).name).unlink(missing_ok=True)  # never offer it
        message = f"export of {run_dir} failed verification: " + "; ".join(failures)
        passed = ["hf", *(variant for variant, v in variants.items() if v["passed"])]
        _fail(out, record, message, offered=passed)
        raise ExportError(message)
    record.update(
        status="ok",
        offered=list(record["artifacts"]),
        created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    _write(out, record)
    return record


def _load_student(folder: Path):
    """The student twice: with eager attention (a plain graph to export) and as users load it."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if not (folder / "config.json").is_file():
        raise ExportError(f"no student to export: {folder} has no config.json (was the run finished?)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        load = AutoModelForSequenceClassification.from_pretrained
        model = load(str(folder), local_files_only=True, attn_implementation="eager").eval()
        reference = load(str(folder), local_files_only=True).eval()
    except Exception as exc:  # transformers raises OSError, ValueError, safetensors errors, ...
        raise ExportError(f"cannot load the student from {folder}: {exc}") from exc
    return model, tokenizer, reference


def _to_onnx(model, tokenizer, names: list[str], path: Path, opset: int) -> None:
    enc = tokenizer(_TRACE_TEXTS, padding=True, return_tensors="pt")
    args = tuple(enc[n] if n in enc else torch.zeros_like(enc["input_ids"]) for n in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in names} | {"logits": {0: "batch"}}
    wrapper = _LogitsOnly(model, names).eval()  # eval: the exporter restores the wrapper's mode afterwards
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer chatter about the legacy exporter and Python bools
            torch.onnx.export(
                wrapper,
                args,
                str(path),
                dynamo=False,
                input_names=names,
                output_names=["logits"],
                dynamic_axes=axes,
                opset_version=opset,
                do_constant_folding=True,
            )
        import onnx

        onnx.checker.check_model(str(path))
    except Exception as exc:
        raise ExportError(f"ONNX export failed: {type(exc).__name__}: {exc}") from exc


def _quantize(src: Path, dst: Path, *, reduce_range: bool, per_channel: bool) -> None:
    """Dynamic int8 quantisation: int8 weights, activations quantised on the fly (no calibration data)."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    quiet = logging.getLogger()
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # silence the "consider pre-processing" hint, logged on the root logger
    try:
        quantize_dynamic(
            str(src),
            str(dst),
            weight_type=QuantType.QInt8,
            reduce_range=reduce_range,
            per_channel=per_channel,
        )
    except Exception as exc:
        raise ExportError(f"int8 quantization failed: {type(exc).__name__}: {exc}") from exc
    finally:
        quiet.setLevel(level)


def _verify(
    ref_model,
    tokenizer,
    names,
    out: Path,
    report: dict,
    dataset,
    int8: bool,
    thresholds: ExportThresholds,
    max_examples: int | None,
) -> dict:
    dataset, digest_matches = run_dataset(report, dataset)
    dev = list(dataset.dev)[:max_examples] if max_examples else list(dataset.dev)
    if not dev:
        raise ExportError(f"cannot verify the export: dataset {dataset.name!r} has no dev examples")
    enc = encode_set(dev, tokenizer, run_max_length(report), dataset.label_names, dataset.task_kind, names)
    reference = predict_all(torch_predictor(ref_model), enc.batches)
    variants = {"onnx": out / ONNX_FILE, **({"onnx_int8": out / INT8_FILE} if int8 else {})}
    results = {}
    for variant, path in variants.items():
        try:
            logits = predict_all(onnx_predictor(onnx_session(path)), enc.batches)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ExportError(f"ONNX Runtime cannot run {path.name}: {exc}") from exc
        results[variant] = compare(
            reference, logits, enc.labels, dataset.task_kind, variant == "onnx_int8", thresholds
        )
    return {
        "split": "dev",
        "n_examples": len(dev),
        "dataset": dataset.name,
        "dataset_digest_matches": digest_matches,
        "pytorch_metrics": compute_metrics(dataset.task_kind, enc.labels, reference),
        "variants": results,
    }


def compare(
    reference: np.ndarray,
    logits: np.ndarray,
    labels: np.ndarray,
    task_kind: str,
    quantized: bool,
    thresholds: ExportThresholds,
) -> dict:
    """How closely ``logits`` reproduce ``reference`` (PyTorch), with the threshold failures.

    Args:
        reference: PyTorch outputs ``(N, C)``.
        logits: The exported model's outputs on the same inputs.
        labels: Dev targets, for the metric delta.
        task_kind: ``classification`` or ``regression``.
        quantized: Judge with the int8 thresholds instead of the fp32 ones.
        thresholds: The thresholds.
    """
    diff = np.abs(reference - logits)
    metric = primary_metric(task_kind)
    metrics = compute_metrics(task_kind, labels, logits)
    ref_score = compute_metrics(task_kind, labels, reference)[metric]
    out = {
        "max_abs_logit_diff": float(diff.max()),
        "mean_abs_logit_diff": float(diff.mean()),
        "metrics": metrics,
        "metric_delta": metrics[metric] - ref_score,
    }
    failures = []
    if task_kind == "classification":
        out["agreement"] = float(np.mean(reference.argmax(-1) == logits.argmax(-1)))
        need = thresholds.int8_min_agreement if quantized else thresholds.fp32_min_agreement
        if out["agreement"] < need:
            failures.append(f"agreement with PyTorch {out['agreement']:.4f} < {need}")
    else:
        a, b = reference.reshape(-1), logits.reshape(-1)
        flat = np.std(a) < 1e-12 or np.std(b) < 1e-12
        out["correlation"] = float(np.allclose(a, b)) if flat else float(np.corrcoef(a, b)[0, 1])
        scale = float(np.std(labels)) or 1.0
        out["relative_rmse"] = float(np.sqrt(np.mean((a - b) ** 2))) / scale
        if quantized and out["relative_rmse"] > thresholds.int8_max_relative_rmse:
            failures.append(
                f"RMSE vs. PyTorch is {out['relative_rmse']:.4f} of the targets' std "
                f"> {thresholds.int8_max_relative_rmse}"
            )
    if not quantized and out["max_abs_logit_diff"] > thresholds.fp32_max_abs_diff:
        failures.append(
            f"max abs logit diff {out['max_abs_logit_diff']:.3g} > {thresholds.fp32_max_abs_diff}"
        )
    out["failures"] = failures
    out["passed"] = not failures
    return out


def read_export(run_dir: Path) -> dict | None:
    """``export/export.json`` of a run, or None when the run was never exported."""
    path = Path(run_dir) / "export" / EXPORT_JSON
    return json.loads(path.read_text()) if path.is_file() else None


def _sizes(run_dir: Path, files: dict[str, str]) -> dict[str, int]:
    return {variant: folder_bytes(run_dir / rel) for variant, rel in files.items()}


def _clear(out: Path) -> None:
    """Remove a previous export's files, so an old model never passes for a new one."""
    out.mkdir(parents=True, exist_ok=True)
    for name in (ONNX_FILE, INT8_FILE, EXPORT_JSON, ONNX_FILE + ".data"):
        (out / name).unlink(missing_ok=True)


def _fail(out: Path, record: dict, message: str, offered: list[str] | None = None) -> None:
    """Record the failure in ``export.json`` (``offered``: the variants that still passed)."""
    record.update(
        status="failed",
        error=message,
        offered=offered or [],
        created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    if (out.parent / "report.json").is_file():  # only a run directory gets an export record
        _write(out, record)


def _write(out: Path, record: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (EXPORT_JSON + ".tmp")
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(out / EXPORT_JSON)


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime

    return {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}
