"""A stand-in for the engine, for queue tests that must not train (seconds, not minutes).

``fake_distill`` reads the job's DistillSpec and behaves like ``models.pipeline.run_distillation``:
it reports progress per step, checkpoints after every step, honours ``should_stop`` (raising
``Cancelled``), resumes from its checkpoint, and writes report.json, learning_curves.png and a
student folder. Its behaviour is chosen by the spec's training settings:

- steps = ``kd_config.training.max_steps`` (default 3); each step sleeps ``0.05 * epochs`` s;
- ``training.seed`` 13: raises a ``ConfigError``; 14: raises ``RuntimeError`` (a crash);
  15: ignores ``should_stop`` (to test the kill after the grace period); 16: the export fails
  verification of the int8 variant (the fp32 ONNX model is still offered).

Delivery goes through the real ``deliver_if_asked`` with a stand-in exporter and card builder that
write small files where the engine's would.
"""

from __future__ import annotations

import json
import os
import struct
import time
import zlib
from typing import Any

from app.jobs.runners import RunContext, Runner, deliver_if_asked
from models.config import DistillSpec
from models.errors import Cancelled, ConfigError, ExportError
from models.registry import Registry

FAKE_RUNNERS: Registry[Runner] = Registry("job kind")


def _png_1px() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)  # 1x1, 8-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\x80"))
        + chunk(b"IEND", b"")
    )


def _checkpoint(ctx: RunContext) -> dict[str, Any]:
    path = ctx.out_dir / "checkpoint" / "state.json"
    if ctx.request.resume and path.is_file():
        return json.loads(path.read_text())
    return {"step": 0, "starts": [], "pids": []}


@FAKE_RUNNERS.register("distill")
def fake_distill(ctx: RunContext) -> dict[str, Any]:
    spec = DistillSpec.model_validate(ctx.request.payload["spec"])
    training = spec.kd_config.training
    if training.seed == 13:
        raise ConfigError("fake runner: a configuration problem found at run time")
    if training.seed == 14:
        raise RuntimeError("fake runner: something broke")
    total = training.max_steps or 3
    state = _checkpoint(ctx)
    state["starts"].append(state["step"])
    state["pids"].append(os.getpid())
    (ctx.out_dir / "checkpoint").mkdir(parents=True, exist_ok=True)
    while state["step"] < total:
        if training.seed != 15 and ctx.should_stop():
            raise Cancelled(f"stopped at step {state['step']}")
        time.sleep(0.05 * training.epochs)
        state["step"] += 1
        # atomic, like a real checkpoint: a reader (the test) never sees a half-written file
        tmp = ctx.out_dir / "checkpoint" / "state.json.tmp"
        tmp.write_text(json.dumps(state))
        os.replace(tmp, ctx.out_dir / "checkpoint" / "state.json")
        ctx.progress(
            {
                "stage": "kd",
                "epoch": 1,
                "step": state["step"],
                "total_steps": total,
                "metrics": {"loss": 1.0 / state["step"]},
            }
        )
    student = ctx.out_dir / "student"
    student.mkdir(exist_ok=True)
    (student / "config.json").write_text(json.dumps({"model_type": "bert", "num_hidden_layers": 2}))
    (ctx.out_dir / "learning_curves.png").write_bytes(_png_1px())
    descriptor = {"family": "bert", "hidden_size": 384, "num_heads": 12, "tokenizer_id": "fake"}
    report = {
        "metric": "accuracy",
        "teacher_score": 0.8,
        # deterministic and different per pipeline, so a refit sees variation
        "student_score": 0.55 + 0.2 * int(spec.kd_config.pipeline_key()[:4], 16) / 0xFFFF,
        "ratio": None,
        "no_kd_score": None,
        "best_epoch": 1,
        "kd_config": spec.kd_config.model_dump(mode="json"),
        "teacher": {"name": spec.teacher, "num_layers": 6, "num_params": 22_700_000, **descriptor},
        "student": {"name": spec.student.describe(), "num_layers": 2, "num_params": 11_000_000, **descriptor},
        "wall_time_s": 0.1 * total,
        "hardware": {"platform": "test", "cpu_count": 2},
        "code_version": "test",
        "seed": training.seed,
        "created_at": "2025-01-01T00:00:00Z",
        "resume_starts": state["starts"],
        "steps_done": state["step"],
    }
    report["ratio"] = report["student_score"] / report["teacher_score"]
    (ctx.out_dir / "report.json").write_text(json.dumps(report))
    fail_int8 = training.seed == 16
    return deliver_if_asked(
        ctx,
        report,
        export=lambda run_dir: _fake_export(run_dir, fail_int8),
        report_card=_fake_card,
    )


def _fake_export(run_dir, fail_int8: bool) -> dict[str, Any]:
    out = run_dir / "export"
    out.mkdir(exist_ok=True)
    (out / "model.onnx").write_bytes(b"fake onnx")
    offered = ["hf", "onnx"] if fail_int8 else ["hf", "onnx", "onnx_int8"]
    record = {"status": "failed" if fail_int8 else "ok", "offered": offered}
    if fail_int8:
        record["error"] = "fake export: int8 agreement 0.80 below 0.95"
    else:
        (out / "model.int8.onnx").write_bytes(b"fake int8")
    (out / "export.json").write_text(json.dumps(record))
    if fail_int8:
        raise ExportError(record["error"])
    return record


def _fake_card(run_dir, *, recommendation, speed) -> dict[str, Any]:
    report = json.loads((run_dir / "report.json").read_text())
    card = {"summary": {"ratio": report["ratio"]}, "recommendation": recommendation}
    (run_dir / "report_card.json").write_text(json.dumps(card))
    (run_dir / "report_card.html").write_text("<!doctype html><title>report card</title>")
    return card
