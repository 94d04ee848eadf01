"""``autodistiller assets``: prepare and check the offline datasets and weights. Torch-free."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from models import assets
from models.errors import AssetMissingError

cli = typer.Typer(help="Offline assets (datasets and weights from registry packages).", no_args_is_help=True)
console = Console()


def _checks() -> list[tuple[str, object]]:
    return [
        ("minilm-l6 weights", assets.minilm_path),
        ("rotten_tomatoes", assets.rotten_tomatoes_file),
        ("tweets", assets.tweets_file),
        ("bbc_news", assets.bbc_dir),
        ("rt_polarity_200", assets.rt_polarity_file),
        ("wordnet", assets.wordnet_dir),
        *(
            (f"{name} (optional, npm)", lambda n=name: assets.npm_dataset_dir(n))
            for name in assets.NPM_DATASETS
        ),
        ("mpnet-base (optional)", lambda: assets.mpnet_path(prepare=False)),
    ]


@cli.command("status")
def status() -> None:
    """Show where each asset is, or the command that installs it."""
    table = Table("asset", "status")
    for name, locate in _checks():
        try:
            table.add_row(name, f"[green]{locate()}[/]")
        except AssetMissingError as exc:
            table.add_row(name, f"[yellow]{exc.message}[/]")
    console.print(table)


@cli.command("prepare")
def prepare(
    npm: Annotated[
        bool,
        typer.Option(
            "--npm/--no-npm",
            "--spam-assassin/--no-spam-assassin",
            help="also fetch the optional npm datasets (SpamAssassin, State of the Union)",
        ),
    ] = True,
) -> None:
    """One-time preparation: WordNet with LF line endings; the npm datasets when npm is present."""
    console.print(f"wordnet: {assets.wordnet_dir()}")
    if not npm:
        return
    for name, package in assets.NPM_DATASETS.items():
        try:
            console.print(f"{name}: {assets.install_npm_dataset(name)}")
        except AssetMissingError as exc:  # optional dataset: say so, the rest works without it
            console.print(f"[yellow]{name} not installed (optional, {package}):[/] {exc.message}")
        console.print(f"  source and licence: {assets.NPM_PROVENANCE[name]}")
