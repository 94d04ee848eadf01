"""The deliverable student of a finished distillation job: export and report card.

After training, a job (unless submitted with ``deliver: false``) exports its student to ONNX and
dynamic-int8 ONNX, each verified on the dev set (:func:`models.export.export_student`), then builds
the report card (:func:`models.report_card.build_report_card`), which also records an export that
failed. The outcome goes into the job's result as ``deliverable``::

    {"status": "ready" | "failed" | "skipped",
     "offered": ["hf", "onnx", "onnx_int8"],      # variants that passed verification
     "report_card": true,                          # report_card.html/.json were written
     "error": {"code": "export_failed", "message": "..."}   # only when failed
     "summary": {...}}                             # the card's headline numbers

A failed export or report card does not fail the job: the student was trained and its sweep record
is valid, so the job succeeds, the failure is on the job resource (``deliverable.status ==
"failed"`` with the error code and message), in its log and in its events, and only the variants
that passed are offered. Nothing is skipped silently: ``skipped`` appears only when the submitter
asked for it.

Runs in the worker's child process (torch is imported lazily).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Progress = Callable[[dict[str, Any]], None]


def recommendation_of(payload: dict[str, Any]) -> dict[str, Any] | None:
    """What the job's payload says about the recommendation its config came from."""
    rec = payload.get("recommendation")
    return dict(rec) if isinstance(rec, dict) else None


def _note_recommendation(run_dir: Path, recommendation: dict[str, Any] | None) -> None:
    """Store the recommendation in report.json, so the run folder alone says where its config came from."""
    if recommendation is None:
        return
    path = run_dir / "report.json"
    report = json.loads(path.read_text())
    report["recommendation"] = recommendation
    tmp = path.with_name(".report.json.tmp")
    tmp.write_text(json.dumps(report, indent=2))
    tmp.replace(path)


def deliver(
    run_dir: Path,
    report: dict[str, Any],
    *,
    recommendation: dict[str, Any] | None = None,
    progress: Progress = lambda _: None,
    threads: int = 1,
    export: Callable[..., dict] | None = None,
    report_card: Callable[..., dict] | None = None,
) -> dict[str, Any]:
    """Export the run's student and build its report card; return the ``deliverable`` record.

    Args:
        run_dir: The finished run (report.json, student/).
        report: The run's report (updated in place with ``recommendation``).
        recommendation: Where the KD config came from (id, rank, predicted ratio, version).
        progress: The job's progress callback (stages ``export`` and ``report_card``).
        threads: CPU threads for the report card's timings.
        export, report_card: The exporter and card builder (defaults: the engine's).
    """
    from models.errors import AutoDistillerError, ExportError
    from models.export_runtime import SpeedOptions

    if export is None:
        from models.export import export_student as export
    if report_card is None:
        from models.report_card import build_report_card as report_card

    run_dir = Path(run_dir)
    if recommendation is not None:
        report["recommendation"] = recommendation
        _note_recommendation(run_dir, recommendation)
    out: dict[str, Any] = {"status": "ready", "offered": [], "report_card": False}
    progress({"stage": "export"})
    try:
        record = export(run_dir)
        out["offered"] = list(record.get("offered") or [])
    except ExportError as exc:
        exported = _read_export(run_dir)
        out.update(
            status="failed",
            offered=list(exported.get("offered") or []),
            error={"code": exc.code, "message": exc.message},
        )
        log.warning("export failed: %s", exc.message)
        progress({"stage": "export_failed", "error": exc.message})
    progress({"stage": "report_card"})
    try:
        card = report_card(run_dir, recommendation=recommendation, speed=SpeedOptions(threads=threads))
    except Exception as exc:  # the student is trained: record the failure on the job, keep the run
        code = exc.code if isinstance(exc, AutoDistillerError) else "report_card_failed"
        message = exc.message if isinstance(exc, AutoDistillerError) else f"{type(exc).__name__}: {exc}"
        log.warning("report card failed: %s", message)
        progress({"stage": "report_card_failed", "error": message})
        if out["status"] == "ready":
            out.update(status="failed", error={"code": code, "message": f"report card: {message}"})
        return out
    out["report_card"] = True
    out["summary"] = card.get("summary")
    return out


def _read_export(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "export" / "export.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, json.JSONDecodeError):
        return {}
