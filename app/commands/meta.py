"""``autodistiller meta``: import sweep history, evaluate and refit the meta-learner. Torch-free."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

cli = typer.Typer(help="The meta-learner: import history, evaluate, refit.", no_args_is_help=True)

RecordsOpt = Annotated[Path, typer.Option("--records", help="Sweep records (.parquet, .csv or .jsonl)")]
TargetOpt = Annotated[str, typer.Option("--target", help="Meta-learner target: relative or ratio")]
MaxIterOpt = Annotated[int, typer.Option("--max-iter", help="Boosting iterations per tree ensemble")]


def _load(path: Path) -> list[Any]:
    from recommender import read_records

    try:
        return read_records(path)
    except (FileNotFoundError, ValueError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--records") from None


def _learner(target: str, max_iter: int) -> Any:
    from recommender import MetaLearner

    if target not in ("relative", "ratio"):
        raise typer.BadParameter("must be 'relative' or 'ratio'", param_hint="--target")
    return MetaLearner(target=target, max_iter=max_iter)


def _write_json(data: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def _command_line() -> str:
    return shlex.join(["autodistiller", *sys.argv[1:]])


@cli.command("import-distiller")
def import_distiller(
    table: Annotated[Path, typer.Option("--table", help="The Distiller paper's sweep table (CSV)")],
    out: Annotated[Path, typer.Option("--out", help="Records file to write (.parquet, .csv, .jsonl)")],
    features: Annotated[Path | None, typer.Option("--features", help="The dataset-features CSV")] = None,
) -> None:
    """Convert the paper's released sweep table into sweep records."""
    from models.errors import DatasetError
    from recommender import read_distiller_table, write_records

    try:
        records = read_distiller_table(table, features)
        write_records(records, out)
    except (DatasetError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    datasets = sorted({r.dataset_id for r in records})
    typer.echo(f"wrote {len(records)} records ({len(datasets)} datasets: {', '.join(datasets)}) to {out}")


@cli.command("evaluate")
def evaluate(
    records: RecordsOpt,
    out: Annotated[Path, typer.Option("--out", help="Folder for loo.json and loo.png")] = Path("meta-eval"),
    min_configs: Annotated[int, typer.Option("--min-configs", help="Pipelines a group needs")] = 5,
    target: TargetOpt = "relative",
    max_iter: MaxIterOpt = 200,
) -> None:
    """Leave-one-dataset-out: meta-learner vs fixed default, nearest datasets and random choice."""
    from recommender import leave_one_dataset_out, plot_evaluation

    history = _load(records)
    try:
        result = leave_one_dataset_out(
            history, learner=_learner(target, max_iter), min_configs=min_configs, progress=typer.echo
        )
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    result["command"] = _command_line()
    _write_json(result, out / "loo.json")
    if result["groups"]:
        plot_evaluation(result, out / "loo.png")
    typer.echo(json.dumps(result["summary"], indent=2))
    typer.echo(
        f"{result['n_groups']} groups evaluated, {len(result['skipped'])} skipped; wrote {out}/loo.json"
    )


@cli.command("heldout")
def heldout(
    records: RecordsOpt,
    test: Annotated[list[str], typer.Option("--test", help="Held-out dataset id (repeatable)")],
    k: Annotated[int, typer.Option("--k", help="Top-k compared with k random pipelines")] = 5,
    out: Annotated[Path | None, typer.Option("--out", help="JSON file for the result")] = None,
    target: TargetOpt = "relative",
    max_iter: MaxIterOpt = 200,
) -> None:
    """The paper's check: train without the test datasets, then top-k versus k random pipelines."""
    from recommender import heldout_evaluation

    history = _load(records)
    unknown = sorted(set(test) - {r.dataset_id for r in history})
    if unknown:
        raise typer.BadParameter(f"not in the records: {', '.join(unknown)}", param_hint="--test")
    train = [r for r in history if r.dataset_id not in test]
    held = [r for r in history if r.dataset_id in test]
    try:
        result = heldout_evaluation(train, held, learner=_learner(target, max_iter), k=k)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    result["command"] = _command_line()
    if out is not None:
        _write_json(result, out)
    typer.echo(json.dumps(result["summary"], indent=2))


@cli.command("refit")
def refit(
    records: RecordsOpt,
    out: Annotated[Path, typer.Option("--out", help="Artifact to write (*.skops; a .json sidecar beside)")],
    with_evaluation: Annotated[
        bool, typer.Option("--evaluate/--no-evaluate", help="Store a leave-one-dataset-out summary")
    ] = False,
    target: TargetOpt = "relative",
    max_iter: MaxIterOpt = 200,
) -> None:
    """Fit the meta-learner on all records and save a versioned artifact."""
    from recommender import leave_one_dataset_out, save_meta_learner

    history = _load(records)
    learner = _learner(target, max_iter)
    evaluation = None
    try:
        if with_evaluation:
            evaluation = leave_one_dataset_out(history, learner=learner)["summary"]
        learner.fit(history)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    save_meta_learner(learner, out, records=history, evaluation=evaluation)
    typer.echo(f"fitted on {len(history)} records; wrote {out}")
