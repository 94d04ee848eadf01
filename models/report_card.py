"""The report card of a run: teacher vs. no-KD student vs. distilled student vs. its ONNX exports.

Everything is re-measured on the run's dev split, the same way for every model: primary and
secondary metrics, per-class metrics and confusion matrix (classification), agreement with the
teacher, calibration (ECE), parameters, file size, CPU latency at batch 1 and throughput at batch
32 (PyTorch for the PyTorch models, ONNX Runtime for the exports), and ``ratio``. Writes
``report_card.json`` and a self-contained ``report_card.html`` into the run directory.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from models.errors import AssetMissingError, ConfigError
from models.export import read_export
from models.export_runtime import (
    SpeedInputs,
    SpeedOptions,
    encode_set,
    folder_bytes,
    measure_speeds,
    model_input_names,
    onnx_predictor,
    onnx_session,
    predict_all,
    read_report,
    run_dataset,
    run_max_length,
    throughput_set,
    torch_predictor,
    torch_threads,
)
from models.metrics import compute_metrics

ECE_BINS = 15
ROLES = ("teacher", "no_kd_student", "student", "student_onnx", "student_int8")
ROLE_LABELS = {
    "teacher": "Teacher",
    "no_kd_student": "Student without KD (same budget)",
    "student": "Distilled student",
    "student_onnx": "Distilled student, ONNX fp32",
    "student_int8": "Distilled student, ONNX int8",
}
SECTIONS = (
    "summary",
    "quality",
    "per_class",
    "confusion",
    "calibration",
    "efficiency",
    "learning_curves",
    "config",
    "export",
)


@dataclass(frozen=True)
class _Source:
    """One model to measure: how to load it and what to call it."""

    role: str
    path: Path
    runtime: str  # "pytorch" or "onnxruntime"
    precision: str  # "fp32" or "int8"
    tokenizer_dir: Path


def build_report_card(
    run_dir: Path, *, dataset=None, recommendation: dict | None = None, speed: SpeedOptions | None = None
) -> dict:
    """Measure every model of a run on its dev split; write ``report_card.json`` and ``.html``.

    Args:
        run_dir: A finished run (``report.json``, ``student/``; ``student_no_kd/`` and ``export/``
            when they were made).
        dataset: The run's dataset; reloaded from the run's spec if None.
        recommendation: The recommendation the KD config came from (its id, rank, predicted ratio,
            ...); defaults to ``report["recommendation"]`` when the run recorded one.
        speed: How much latency/throughput to measure (small defaults).

    Returns:
        The report card (what ``report_card.json`` holds).

    Raises:
        AssetMissingError: The run has no report, or its teacher or student folder is missing.
    """
    run_dir = Path(run_dir)
    speed = speed or SpeedOptions()
    report = read_report(run_dir)
    dataset, digest_matches = run_dataset(report, dataset)
    export = read_export(run_dir)
    sources, notes = _sources(run_dir, report, export)
    models, timing = {}, {}
    for source in sources:
        models[source.role], timing[source.role] = _measure(source, dataset, run_max_length(report), speed)
        models[source.role]["path"] = _shown_path(source.path, run_dir)
    with torch_threads(speed.threads):  # side by side, so the speed-ups compare like with like
        for role, measured in measure_speeds(timing, speed).items():
            models[role].update(measured)
    _relate_to_teacher(models, report["metric"])
    for role in ROLES:
        if role not in models:
            models[role] = {"role": role, "label": ROLE_LABELS[role], "available": False, "note": notes[role]}
    models = {role: {**models[role], "label": ROLE_LABELS[role]} for role in ROLES}
    recommendation = recommendation if recommendation is not None else report.get("recommendation")
    card = {
        "schema_version": 1,
        "run_dir": run_dir.name,  # the run's name (a job id in the service), never a server path
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sections": list(SECTIONS),
        "dataset": {
            "name": dataset.name,
            "task_kind": dataset.task_kind,
            "label_names": list(dataset.label_names),
            "split": "dev",
            "n_dev": len(dataset.dev),
            "digest": dataset.digest(),
            "digest_matches_run": digest_matches,
        },
        "metric": report["metric"],
        "summary": _summary(models, report["metric"]),
        "models": models,
        "calibration": _calibration_info(dataset.task_kind),
        "measurement": {
            "speed": asdict(speed),
            "timing": "side by side: the models take turns call by call (measure_speeds)",
            "threads": speed.threads,
            "max_length": run_max_length(report),
            "device": "cpu",
            "hardware": report.get("hardware"),
            "code_version": report.get("code_version"),
        },
        "learning_curves": _learning_curves(run_dir, report),
        "config": {
            "kd_config": report["kd_config"],
            "pipeline_key": report.get("pipeline_key"),
            "spec": report.get("spec"),
            "teacher": report.get("teacher"),
            "student": report.get("student"),
        },
        "config_source": _config_source(recommendation),
        "recommendation": recommendation,
        "export": export or {"status": "not_exported"},
        "training": {
            k: report.get(k)
            for k in (
                "teacher_score",
                "student_score",
                "no_kd_score",
                "ratio",
                "best_epoch",
                "score_split",
                "train_time_s",
                "wall_time_s",
            )
        },
        "warnings": _warnings(digest_matches, export),
    }
    _write(run_dir, card)
    return card


def _config_source(recommendation: dict | None) -> str:
    """Where the KD config came from: a search (its trial's note), a recommendation, or the user."""
    if not recommendation:
        return "given by the user (no recommendation)"
    if recommendation.get("source") == "search":
        return f"search {recommendation.get('search_id')}, trial {recommendation.get('trial')}"
    return "recommendation"


def _shown_path(path: Path, run_dir: Path) -> str:
    """A model's location as the card shows it: inside the run, relative to it; else its name."""
    return path.relative_to(run_dir).as_posix() if path.is_relative_to(run_dir) else path.name


def _sources(run_dir: Path, report: dict, export: dict | None) -> tuple[list[_Source], dict[str, str]]:
    """The models this run has, and for each missing one why it is missing."""
    artifacts = report.get("artifacts") or {}
    # the local folder (run_paths.json; older runs kept it in report.json); messages name no path
    teacher = (report.get("local_paths") or {}).get("teacher_path") or report.get("teacher_path")
    if not teacher or not (Path(teacher) / "config.json").is_file():
        raise AssetMissingError(
            "the report card needs the run's fine-tuned teacher, but its folder "
            f"{'(' + Path(teacher).name + ') ' if teacher else ''}is missing "
            "(was the teacher cache cleared? rerun the distillation to rebuild it)"
        )
    student = run_dir / (artifacts.get("student") or "student")
    if not (student / "config.json").is_file():
        raise AssetMissingError(
            f"the report card needs the distilled student, but the run's {student.name}/ has no config.json"
        )
    sources = [_Source("teacher", Path(teacher), "pytorch", "fp32", Path(teacher))]
    notes: dict[str, str] = {}
    no_kd = artifacts.get("no_kd_student")
    if no_kd and (run_dir / no_kd / "config.json").is_file():
        sources.append(_Source("no_kd_student", run_dir / no_kd, "pytorch", "fp32", run_dir / no_kd))
    else:
        notes["no_kd_student"] = (
            "not trained for this run (train_no_kd_baseline was off)"
            if not no_kd
            else f"{no_kd}/ is missing from the run directory"
        )
    sources.append(_Source("student", student, "pytorch", "fp32", student))
    offered = set((export or {}).get("offered") or [])
    for role, variant, precision in (("student_onnx", "onnx", "fp32"), ("student_int8", "onnx_int8", "int8")):
        path = run_dir / ((export or {}).get("artifacts") or {}).get(variant, "")
        if export is None:
            notes[role] = "not exported (run `autodistiller export <run dir>`)"
        elif variant not in offered or not path.is_file():
            notes[role] = f"not offered: {export.get('error') or 'the export did not produce it'}"
        else:
            sources.append(_Source(role, path, "onnxruntime", precision, run_dir / "export"))
    return sources, notes


def _measure(source: _Source, dataset, max_length: int, speed: SpeedOptions) -> tuple[dict, SpeedInputs]:
    """One model's quality on dev, and what its speed is measured on (by the caller, side by side)."""
    from models.modeling import count_parameters, load_tokenizer

    tokenizer = load_tokenizer(source.tokenizer_dir)
    if source.runtime == "pytorch":
        from transformers import AutoModelForSequenceClassification

        model = AutoModelForSequenceClassification.from_pretrained(str(source.path), local_files_only=True)
        if model.config.num_labels != dataset.num_labels:
            raise ConfigError(
                f"the {source.role} model has {model.config.num_labels} outputs but dataset "
                f"{dataset.name!r} needs {dataset.num_labels}: not this run's model"
            )
        names, params = model_input_names(model, tokenizer), count_parameters(model)
        predictor = torch_predictor(model)
    else:
        session = onnx_session(source.path, threads=speed.threads)
        names = [i.name for i in session.get_inputs()]
        predictor, params = onnx_predictor(session), None
    labels_args = (dataset.label_names, dataset.task_kind, names)
    enc = encode_set(list(dataset.dev), tokenizer, max_length, *labels_args, batch_size=speed.batch_size)
    logits = predict_all(predictor, enc.batches)
    timed = throughput_set(dataset.dev, tokenizer, max_length, *labels_args, speed)
    entry = {
        "role": source.role,
        "available": True,
        "note": None,
        "runtime": source.runtime,
        "precision": source.precision,
        "path": source.path.name,  # replaced by the run-relative name by the caller
        "parameters": params,
        "file_size_bytes": folder_bytes(source.path),
        **_quality(logits, enc.labels, dataset.task_kind, dataset.label_names),
        "_logits": logits,
    }
    return entry, SpeedInputs(predictor, enc.singles, timed.batches)


def _quality(logits: np.ndarray, labels: np.ndarray, task_kind: str, label_names) -> dict:
    metrics = compute_metrics(task_kind, labels, logits)
    out = {"metrics": metrics}
    if task_kind != "classification":
        return out
    pred = logits.argmax(-1)
    ids = list(range(len(label_names)))
    p, r, f, s = precision_recall_fscore_support(labels, pred, labels=ids, zero_division=0)
    out["per_class"] = {
        name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, name in enumerate(label_names)
    }
    out["confusion_matrix"] = confusion_matrix(
        labels, pred, labels=ids
    ).tolist()  # rows: true, cols: predicted
    out["ece"], out["reliability"] = expected_calibration_error(logits, labels, ECE_BINS)
    return out


def expected_calibration_error(
    logits: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> tuple[float, list]:
    """ECE over ``bins`` equal-width bins of the max softmax probability, bins ``(lo, hi]``.

    ECE = sum over bins of (n_b / N) * |accuracy_b - confidence_b|.

    Returns:
        ``(ece, reliability)``: ``reliability`` lists every non-empty bin (lo, hi, count, accuracy,
        mean confidence), the data of a reliability diagram.
    """
    z = logits - logits.max(-1, keepdims=True)
    probs = np.exp(z) / np.exp(z).sum(-1, keepdims=True)  # (N, C)
    conf, correct = probs.max(-1), probs.argmax(-1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, bins - 1)
    ece, reliability = 0.0, []
    for b in range(bins):
        mask = which == b
        if not mask.any():
            continue
        acc, mean_conf = float(correct[mask].mean()), float(conf[mask].mean())
        ece += mask.mean() * abs(acc - mean_conf)
        reliability.append(
            {
                "lo": float(edges[b]),
                "hi": float(edges[b + 1]),
                "count": int(mask.sum()),
                "accuracy": acc,
                "confidence": mean_conf,
            }
        )
    return float(ece), reliability


def _relate_to_teacher(models: dict, metric: str) -> None:
    """Add ratio, agreement with the teacher and speed-up to every measured model (in place)."""
    teacher = models["teacher"]
    t_logits = teacher["_logits"]
    for entry in models.values():
        logits = entry.pop("_logits")
        if logits.shape[-1] > 1:
            entry["agreement_with_teacher"] = float(np.mean(logits.argmax(-1) == t_logits.argmax(-1)))
        else:
            a, b = logits.reshape(-1), t_logits.reshape(-1)
            flat = np.std(a) < 1e-12 or np.std(b) < 1e-12
            entry["agreement_with_teacher"] = 0.0 if flat else float(np.corrcoef(a, b)[0, 1])
            entry["mean_abs_diff_from_teacher"] = float(np.abs(a - b).mean())
        entry["speedup_batch1"] = teacher["latency_ms_batch1"] / entry["latency_ms_batch1"]
        entry["throughput_gain_batch32"] = entry["throughput_batch32"] / teacher["throughput_batch32"]
    for entry in models.values():
        score, t_score = entry["metrics"][metric], teacher["metrics"][metric]
        entry["score"] = score
        entry["ratio"] = score / t_score if t_score else None
    if models.get("student", {}).get("parameters"):
        for role in ("student_onnx", "student_int8"):
            if role in models:
                models[role]["parameters"] = models["student"]["parameters"]  # same weights, other format


def _summary(models: dict, metric: str) -> dict:
    def get(role: str, key: str):
        entry = models[role]
        return entry.get(key) if entry["available"] else None

    no_kd, student = get("no_kd_student", "score"), get("student", "score")
    return {
        "metric": metric,
        "teacher_score": get("teacher", "score"),
        "no_kd_score": no_kd,
        "student_score": student,
        "int8_score": get("student_int8", "score"),
        "ratio": get("student", "ratio"),
        "int8_ratio": get("student_int8", "ratio"),
        "kd_gain_over_no_kd": None if no_kd is None else student - no_kd,
        "speedup_batch1": get("student", "speedup_batch1"),
        "int8_speedup_batch1": get("student_int8", "speedup_batch1"),
        "agreement_with_teacher": get("student", "agreement_with_teacher"),
    }


def _calibration_info(task_kind: str) -> dict:
    if task_kind == "classification":
        return {
            "method": f"expected calibration error, {ECE_BINS} equal-width bins over the max softmax "
            "probability",
            "bins": ECE_BINS,
        }
    return {"method": None, "note": "ECE is for classification; skipped for regression (see the metrics)"}


def _learning_curves(run_dir: Path, report: dict) -> dict:
    name = (report.get("artifacts") or {}).get("learning_curves") or "learning_curves.png"
    available = (run_dir / name).is_file()
    return {
        "file": name,
        "available": available,
        "note": None if available else f"{name} is missing from the run directory",
    }


def _warnings(digest_matches: bool, export: dict | None) -> list[str]:
    out = []
    if not digest_matches:
        out.append(
            "the dataset changed since the run: dev numbers here differ from the ones training reported"
        )
    if export and export.get("status") == "failed":
        out.append(f"export failed: {export.get('error')}")
    return out


def _write(run_dir: Path, card: dict) -> None:
    from models.report_card_html import reliability_png, render_report_card

    images = {}
    if card["learning_curves"]["available"]:
        images["learning_curves"] = (run_dir / card["learning_curves"]["file"]).read_bytes()
    if card["dataset"]["task_kind"] == "classification":
        images["reliability"] = reliability_png(card["models"])
    (run_dir / "report_card.json").write_text(json.dumps(card, indent=2))
    (run_dir / "report_card.html").write_text(render_report_card(card, images), encoding="utf-8")
