"""``autodistiller datasets``: list the built-in datasets and inspect a dataset or data file.

Torch-free: only the dataset layer (``models.data``) is imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from models.data import TextDataset, list_builtin, load_dataset, summarize
from models.errors import AssetMissingError, DatasetError

cli = typer.Typer(help="Built-in datasets and data-file checks.", no_args_is_help=True)

EXIT_INVALID = 2
EXIT_MISSING = 1


@cli.command("list")
def list_datasets() -> None:
    """List the built-in datasets, their task, size and providing package."""
    table = Table(title="Built-in datasets")
    table.add_column("name", no_wrap=True)  # names are what users copy: never truncate them
    for column in ("task", "pair", "rows", "package", "installed"):
        table.add_column(column, justify="right" if column == "rows" else "left", overflow="fold")
    for info in list_builtin():
        table.add_row(
            info.name,
            info.task_kind,
            "yes" if info.is_pair else "no",
            f"{info.num_rows:,}",
            info.package,
            "yes" if info.available else f"no: {info.install}",
        )
    Console(soft_wrap=True).print(table)


def _print_labels(console: Console, dataset: TextDataset, labels: dict) -> None:
    if dataset.task_kind == "classification":
        table = Table(title="Label distribution")
        for column in ("label", "train", "dev", "share"):
            table.add_column(column, justify="left" if column == "label" else "right")
        total = len(dataset)
        for name in dataset.label_names:
            count = labels["train"][name] + labels["dev"][name]
            table.add_row(name, str(labels["train"][name]), str(labels["dev"][name]), f"{count / total:.1%}")
        console.print(table)
        return
    for split in ("train", "dev"):
        stats = labels[split]
        if stats:
            typer.echo(
                f"target ({split}): min {stats['min']:g}, mean {stats['mean']:g}, max {stats['max']:g}"
            )


def _print_summary(dataset: TextDataset) -> None:
    console = Console(soft_wrap=True)
    summary = summarize(dataset)
    report = dataset.report
    columns = ", ".join(
        f"{role}={name!r}"
        for role, name in (
            ("text", report.text_column),
            ("text_pair", report.text_pair_column),
            ("label", report.label_column),
        )
        if name
    )
    typer.echo(f"dataset: {dataset.name} ({dataset.task_kind}{', text pairs' if dataset.is_pair else ''})")
    typer.echo(f"source: {report.source}  encoding: {report.encoding or '-'}  columns: {columns or '-'}")
    typer.echo(
        f"sizes: train {len(dataset.train)}, dev {len(dataset.dev)}, total {len(dataset)} "
        f"(rows read {report.rows_read})"
    )
    typer.echo(f"split: {report.split_method}")
    typer.echo(
        f"duplicates: {report.duplicates_found} found, {report.duplicates_dropped} dropped, "
        f"{report.conflicting_duplicates} texts with conflicting labels, "
        f"{report.dev_overlap_dropped} dev rows repeating train dropped"
    )
    _print_labels(console, dataset, summary["labels"])
    for key, title in (("words", "text"), ("pair_words", "text_pair")):
        if key in summary:
            s = summary[key]
            typer.echo(f"{title} length (words): mean {s['mean']}, median {s['median']:g}, "
                       f"p95 {s['p95']:g}, max {s['max']:g}")  # fmt: skip
    typer.echo(f"digest: {dataset.digest()[:16]}")
    for warning in report.warnings:
        typer.echo(f"warning: {warning}")
    typer.echo("problems: none")


@cli.command()
def inspect(
    source: Annotated[str, typer.Argument(help="built-in name (see `datasets list`) or a data file")],
    text_column: Annotated[str | None, typer.Option(help="text column (detected if omitted)")] = None,
    text_pair_column: Annotated[str | None, typer.Option(help="second text column (pair tasks)")] = None,
    label_column: Annotated[str | None, typer.Option(help="label column (detected if omitted)")] = None,
    task_kind: Annotated[str | None, typer.Option(help="classification or regression")] = None,
    dev_file: Annotated[Path | None, typer.Option(help="separate dev file with the same columns")] = None,
    split_column: Annotated[str | None, typer.Option(help="column with train/dev/test")] = None,
    dev_fraction: Annotated[float, typer.Option(help="dev share of the automatic split")] = 0.1,
    group_column: Annotated[str | None, typer.Option(help="keep each group on one side")] = None,
    seed: Annotated[int, typer.Option(help="split / subsample seed")] = 13,
    dedupe: Annotated[bool, typer.Option(help="drop repeated texts (keep the first)")] = True,
    encoding: Annotated[str | None, typer.Option(help="encoding when not UTF-8")] = None,
    max_chars: Annotated[int, typer.Option(help="longest allowed text")] = 20000,
    max_rows: Annotated[int | None, typer.Option(help="most rows allowed")] = None,
    size: Annotated[int | None, typer.Option(help="subsample train to this many examples")] = None,
) -> None:
    """Load a dataset as training would and print sizes, labels, duplicates and lengths.

    Exits with code 2 and every problem listed when the data is invalid, 1 when a built-in's
    package is not installed.
    """
    try:
        dataset = load_dataset(
            source,
            text_column=text_column,
            text_pair_column=text_pair_column,
            label_column=label_column,
            task_kind=task_kind,
            dev_file=dev_file,
            split_column=split_column,
            dev_fraction=dev_fraction,
            group_column=group_column,
            seed=seed,
            drop_duplicates=dedupe,
            encoding=encoding,
            max_chars=max_chars,
            max_rows=max_rows,
        )
        if size is not None:
            dataset = dataset.subsample(size, seed)
    except DatasetError as err:
        typer.echo(err.message.splitlines()[0])
        for problem in err.problems:
            typer.echo(f"problem: {problem}")
        raise typer.Exit(EXIT_INVALID) from err
    except AssetMissingError as err:
        typer.echo(f"missing asset: {err.message}")
        raise typer.Exit(EXIT_MISSING) from err
    _print_summary(dataset)
