"""``autodistiller export`` and ``report-card``: the deliverable student of a finished run.

Exit codes: 0 success, 2 invalid input, 3 missing run file or model, 5 export failed (the reason is
printed and recorded in ``<run>/export/export.json``), 1 unexpected error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from models.errors import AssetMissingError, AutoDistillerError, ExportError

cli = typer.Typer()
console = Console(stderr=True)

EXIT_INVALID, EXIT_ASSET, EXIT_EXPORT = 2, 3, 5


def _quiet() -> None:
    """No per-model "Loading weights" progress bars between the command's own lines."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def _fail(message: str, code: int):
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def _speed(latency_examples: int, throughput_batches: int, threads: int):
    from models.export_runtime import SpeedOptions

    if min(latency_examples, throughput_batches, threads) < 1:
        _fail("--latency-examples, --throughput-batches and --threads must be at least 1", EXIT_INVALID)
    return SpeedOptions(
        latency_examples=latency_examples, throughput_batches=throughput_batches, threads=threads
    )


def _card(run_dir: Path, recommendation: dict | None, speed) -> dict:
    from models.report_card import build_report_card

    card = build_report_card(run_dir, recommendation=recommendation, speed=speed)
    _print_card(card, run_dir)
    return card


@cli.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="a finished run directory (report.json, student/)")],
    opset: Annotated[int, typer.Option(help="ONNX opset version")] = 17,
    int8: Annotated[bool, typer.Option(help="also write the dynamic-int8 ONNX model")] = True,
    reduce_range: Annotated[
        bool,
        typer.Option(
            "--reduce-range/--full-range",
            help="int8 with 7-bit weights (safe without VNNI) or full 8-bit (VNNI hosts only)",
        ),
    ] = True,
    per_channel: Annotated[
        bool,
        typer.Option(
            "--per-channel/--per-tensor",
            help="int8 weight scales per output channel (closer to fp32) or one per matrix",
        ),
    ] = True,
    verify: Annotated[bool, typer.Option(help="verify each export against PyTorch on the dev set")] = True,
    report_card: Annotated[bool, typer.Option(help="then build report_card.html/.json")] = True,
    latency_examples: Annotated[int, typer.Option(help="examples timed at batch 1 (report card)")] = 32,
    throughput_batches: Annotated[int, typer.Option(help="batches of 32 timed (report card)")] = 3,
    threads: Annotated[int, typer.Option(help="CPU threads for the timings (report card)")] = 1,
) -> None:
    """Export the student to ONNX (+ int8), verified on the dev set; then build the report card."""
    from models.export import export_student

    speed = _speed(latency_examples, throughput_batches, threads)
    _quiet()
    try:
        record = export_student(
            run_dir, opset=opset, verify=verify, int8=int8, reduce_range=reduce_range, per_channel=per_channel
        )
    except ExportError as exc:
        if report_card:  # the card records the failure too, so a reader of the run sees it
            _try_card(run_dir, speed)
        _fail(exc.message, EXIT_EXPORT)
    for variant, v in (record.get("verification") or {}).get("variants", {}).items():
        agree = v.get("agreement", v.get("correlation"))
        console.print(
            f"{variant}: agreement {agree:.4f}, max abs logit diff {v['max_abs_logit_diff']:.2e}, "
            f"metric delta {v['metric_delta']:+.4f}",
            highlight=False,
        )
    console.print(
        f"exported to {run_dir / 'export'} (offered: {', '.join(record['offered'])})", highlight=False
    )
    if report_card:
        _try_card(run_dir, speed)


def _try_card(run_dir: Path, speed) -> None:
    try:
        _card(run_dir, None, speed)
    except AssetMissingError as exc:
        _fail(exc.message, EXIT_ASSET)
    except AutoDistillerError as exc:
        _fail(exc.message, EXIT_INVALID)


@cli.command("report-card")
def report_card_cmd(
    run_dir: Annotated[Path, typer.Argument(help="a finished run directory")],
    recommendation: Annotated[
        Path | None, typer.Option(help="JSON file: the recommendation the config came from")
    ] = None,
    latency_examples: Annotated[int, typer.Option(help="examples timed at batch 1")] = 32,
    throughput_batches: Annotated[int, typer.Option(help="batches of 32 timed")] = 3,
    threads: Annotated[int, typer.Option(help="CPU threads for the timings")] = 1,
) -> None:
    """Build report_card.html and report_card.json for a run (teacher vs. students vs. int8)."""
    rec = None
    if recommendation is not None:
        try:
            rec = json.loads(recommendation.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            _fail(f"cannot read recommendation {recommendation}: {exc}", EXIT_INVALID)
        if not isinstance(rec, dict):
            _fail(f"recommendation {recommendation} must hold a JSON object", EXIT_INVALID)
    speed = _speed(latency_examples, throughput_batches, threads)
    _quiet()
    try:
        _card(run_dir, rec, speed)
    except AssetMissingError as exc:
        _fail(exc.message, EXIT_ASSET)
    except AutoDistillerError as exc:
        _fail(exc.message, EXIT_INVALID)


def _print_card(card: dict, run_dir: Path) -> None:
    from rich.table import Table

    metric = card["metric"]
    table = Table(title=f"{card['dataset']['name']}: {metric} on dev")
    for col in ("model", metric, "ratio", "ECE", "ms/example (b=1)", "examples/s (b=32)", "size MiB"):
        table.add_column(col)
    for m in card["models"].values():
        if not m["available"]:
            table.add_row(m["label"], "-", "-", "-", "-", "-", m["note"])
            continue
        ece = m.get("ece")
        table.add_row(
            m["label"],
            f"{m['score']:.4f}",
            f"{m['ratio']:.3f}",
            "-" if ece is None else f"{ece:.3f}",
            f"{m['latency_ms_batch1']:.2f}",
            f"{m['throughput_batch32']:.1f}",
            f"{m['file_size_bytes'] / 2**20:.1f}",
        )
    Console().print(table)
    Console().print(f"report card: {run_dir / 'report_card.html'}", highlight=False)
