"""``autodistiller distill``, ``demo`` and ``config schema``: the KD engine from the command line.

Exit codes: 0 success, 2 invalid input (dataset, config, models), 3 missing offline asset,
4 interrupted (resume with --resume), 1 unexpected error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from models.config import DistillSpec, KDConfig, StudentSpec, kd_config_schema
from models.errors import AssetMissingError, AutoDistillerError, Cancelled

cli = typer.Typer()
config_cli = typer.Typer(help="The KD pipeline config.", no_args_is_help=True)
cli.add_typer(config_cli, name="config")
console = Console(stderr=True)

EXIT_INVALID, EXIT_ASSET, EXIT_INTERRUPTED = 2, 3, 4


@config_cli.command("schema")
def config_schema() -> None:
    """Print the JSON schema of the KD pipeline config."""
    typer.echo(json.dumps(kd_config_schema(), indent=2))


@config_cli.command("validate")
def config_validate(path: Annotated[Path, typer.Argument(help="a KD config JSON file")]) -> None:
    """Validate a KD config file and print it with defaults filled in."""
    typer.echo(_load_config(path).to_json())


def _load_config(path: Path | None) -> KDConfig:
    if path is None:
        return KDConfig()
    try:
        text = path.read_text()
    except OSError as exc:
        _fail(f"cannot read config {path}: {exc.strerror}", EXIT_INVALID)
    try:
        return KDConfig.from_json(text)
    except AutoDistillerError as exc:
        _fail(exc.message, EXIT_INVALID)


def _fail(message: str, code: int):
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


@cli.command()
def distill(
    dataset: Annotated[str, typer.Option(help="built-in dataset name or a CSV/TSV/JSONL/Parquet file")],
    out: Annotated[Path, typer.Option(help="output directory (report.json, student/, plot)")],
    teacher: Annotated[
        str, typer.Option(help="built-in teacher (minilm-l6, mpnet-base) or a local HF folder")
    ] = "minilm-l6",
    student: Annotated[str | None, typer.Option(help="student checkpoint folder")] = None,
    student_layers: Annotated[
        int | None, typer.Option(help="derive a K-layer student from the teacher")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="KD pipeline config JSON (see `config schema`)")] = None,
    epochs: Annotated[int | None, typer.Option(help="override training.epochs")] = None,
    max_length: Annotated[int | None, typer.Option(help="override training.max_length")] = None,
    teacher_epochs: Annotated[int, typer.Option(help="epochs when the teacher needs fine-tuning")] = 3,
    no_kd_baseline: Annotated[bool, typer.Option(help="also train the student without KD")] = False,
    text_column: Annotated[str | None, typer.Option()] = None,
    text_pair_column: Annotated[str | None, typer.Option()] = None,
    label_column: Annotated[str | None, typer.Option()] = None,
    task_kind: Annotated[
        str | None, typer.Option(help="classification or regression (auto-detected)")
    ] = None,
    resume: Annotated[bool, typer.Option(help="continue from the checkpoint in --out")] = False,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1 (default: cuda if present)")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="cache for fine-tuned teachers and assets")] = None,
) -> None:
    """Distil a teacher into a student on a dataset and write report.json, the student and a plot."""
    if (student is None) == (student_layers is None):
        _fail("give exactly one of --student PATH or --student-layers K", EXIT_INVALID)
    kd = _load_config(config)
    overrides = {k: v for k, v in {"epochs": epochs, "max_length": max_length}.items() if v is not None}
    if overrides:
        kd = kd.model_copy(update={"training": kd.training.model_copy(update=overrides)})
        kd = KDConfig.from_dict(kd.model_dump())  # re-validate the overridden values
    options = {
        k: v
        for k, v in {
            "text_column": text_column,
            "text_pair_column": text_pair_column,
            "label_column": label_column,
            "task_kind": task_kind,
        }.items()
        if v
    }
    try:
        spec = DistillSpec(
            dataset=dataset,
            teacher=teacher,
            kd_config=kd,
            train_no_kd_baseline=no_kd_baseline,
            student=StudentSpec(checkpoint=student) if student else StudentSpec(num_layers=student_layers),
            teacher_training={"epochs": teacher_epochs, "max_length": kd.training.max_length},
            dataset_options=options,
        )
    except ValueError as exc:
        _fail(str(exc), EXIT_INVALID)
    report = _run(spec, out, resume=resume, device=device, cache_dir=cache_dir)
    _print_summary(report, out)


def _run(spec: DistillSpec, out: Path, **kwargs) -> dict:
    from models.pipeline import run_distillation  # torch loads here, not at CLI start-up

    try:
        return run_distillation(spec, out, show_progress=True, **kwargs)
    except Cancelled as exc:
        _fail(f"{exc.message}; rerun with --resume", EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        _fail("interrupted; rerun with --resume to continue from the last epoch checkpoint", EXIT_INTERRUPTED)
    except AssetMissingError as exc:
        _fail(exc.message, EXIT_ASSET)
    except AutoDistillerError as exc:
        _fail(exc.message, EXIT_INVALID)


def _print_summary(report: dict, out: Path) -> None:
    from rich.table import Table

    table = Table(title=f"{report['dataset']['name']}: {report['metric']} on dev")
    for col in ("model", "params", report["metric"], "ms/example (CPU, batch 1)"):
        table.add_column(col)
    lat = report.get("latency_cpu_batch1") or {}
    table.add_row(
        "teacher",
        f"{report['parameters']['teacher']:,}",
        f"{report['teacher_score']:.4f}",
        f"{lat.get('teacher_ms_per_example', float('nan')):.2f}",
    )
    table.add_row(
        "student (KD)",
        f"{report['parameters']['student']:,}",
        f"{report['student_score']:.4f}",
        f"{lat.get('student_ms_per_example', float('nan')):.2f}",
    )
    if report.get("no_kd_score") is not None:
        table.add_row(
            "student (no KD)", f"{report['parameters']['student']:,}", f"{report['no_kd_score']:.4f}", ""
        )
    Console().print(table)
    Console().print(f"ratio (student / teacher) = {report['ratio']:.4f}; report: {out / 'report.json'}")


@cli.command()
def demo(
    out: Annotated[Path, typer.Option(help="output directory")] = Path("runs/demo"),
    dataset: Annotated[str, typer.Option(help="built-in dataset")] = "rt_polarity_200",
) -> None:
    """A small end-to-end distillation on a built-in dataset (CPU, about a minute)."""
    spec = demo_spec(dataset)
    _print_summary(_run(spec, out), out)


def demo_spec(dataset: str = "rt_polarity_200") -> DistillSpec:
    """The demo run: MiniLM-L6 -> 2-layer student, MI-alpha 0.9 (skip) + KD, with the no-KD baseline."""
    return DistillSpec(
        dataset=dataset,
        teacher="minilm-l6",
        student=StudentSpec(num_layers=2),
        train_no_kd_baseline=True,
        kd_config=KDConfig.from_dict(
            {
                "intermediate": {"loss": "mi", "alpha": 0.9, "strategy": "skip"},
                "training": {"epochs": 3, "batch_size": 16, "max_length": 64, "learning_rate": 1e-4},
            }
        ),
        teacher_training={"epochs": 3, "max_length": 64, "batch_size": 16, "learning_rate": 1e-4},
    )
