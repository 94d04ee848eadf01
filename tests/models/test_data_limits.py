"""Hostile data files: every one is a DatasetError (never another exception), read within bounds.

Decompression bombs are refused after at most ``max_bytes`` + 1 inflated bytes, wide headers and
deep JSON are refused quickly with short messages, and random or mutated files in every accepted
format and codec raise nothing but :class:`DatasetError` (a property test, deterministic).
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.data import load_dataset, readers
from models.data.readers import MAX_COLUMNS, DatasetLimitError, read_table
from models.errors import DatasetError

CODECS: dict[str, Callable[[bytes], bytes]] = {
    ".gz": gzip.compress,
    ".bz2": bz2.compress,
    ".xz": lzma.compress,
}


def test_every_accepted_codec_is_tested() -> None:
    assert set(readers.COMPRESSIONS) == set(CODECS)


def _rows(n: int, regression: bool = False) -> list[dict[str, Any]]:
    return [
        {
            "text": f"example number {i} says {'yes' if i % 2 else 'no'} {i * 17}",
            "label": i * 0.37 if regression else "ab"[i % 2],
        }
        for i in range(n)
    ]


def _csv(rows: list[dict[str, Any]]) -> bytes:
    return ("text,label\n" + "".join(f"{r['text']},{r['label']}\n" for r in rows)).encode()


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_bomb_is_refused_after_reading_at_most_the_cap(
    codec: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cap = 1 << 20
    path = tmp_path / f"bomb.csv{codec}"
    path.write_bytes(CODECS[codec](b"text,label\n" + b"a" * (40 << 20)))
    inflated = 0
    opener = readers._OPENERS[codec]

    class Counting(io.RawIOBase):
        def __init__(self, inner: IO[bytes]) -> None:
            self.inner = inner

        def read(self, size: int = -1) -> bytes:
            nonlocal inflated
            data = self.inner.read(size)
            inflated += len(data)
            return data

        def __exit__(self, *exc: object) -> None:
            self.inner.close()

    monkeypatch.setitem(readers._OPENERS, codec, lambda p, mode: Counting(opener(p, mode)))
    with pytest.raises(DatasetLimitError, match="decompresses to more than the limit"):
        read_table(path, max_bytes=cap)
    assert cap < inflated <= cap + 1


def test_uncompressed_file_over_the_cap_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_bytes(_csv(_rows(2000)))
    with pytest.raises(DatasetLimitError):
        read_table(path, max_bytes=1000)


def test_parquet_dictionary_bomb_is_refused(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "bomb.parquet"
    text = "x" * 1000
    table = pa.table({"text": [text] * 50_000, "label": ["a", "b"] * 25_000})
    pq.write_table(table, path, use_dictionary=True, compression="zstd")
    assert path.stat().st_size < 100_000  # 50 MB of text in a tiny file
    with pytest.raises(DatasetLimitError, match="decodes to more than the limit"):
        read_table(path, max_bytes=1 << 20)


def test_corrupt_deflate_stream_is_a_dataset_error(tmp_path: Path) -> None:
    data = bytearray(gzip.compress(_csv(_rows(200))))
    data[len(data) // 2 : len(data) // 2 + 8] = b"\xff" * 8
    path = tmp_path / "broken.csv.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="cannot decompress .* corrupt, truncated"):
        read_table(path)


def test_wide_header_is_refused_quickly_with_a_short_message(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    header = ",".join(f"column_name_number_{i}" for i in range(16_000))
    path.write_text(header + "\n" + ",".join("x" * 16_000) + "\n")
    start = time.perf_counter()
    with pytest.raises(DatasetError) as caught:
        load_dataset(path)
    assert time.perf_counter() - start < 0.5
    assert f"at most {MAX_COLUMNS}" in str(caught.value) and len(str(caught.value)) < 300


def test_column_listing_in_messages_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "many.csv"
    names = [f"c{i}_{'n' * 200}" for i in range(1000)]
    path.write_text(",".join(names) + "\n" + ",".join("v" for _ in names) + "\n")
    with pytest.raises(DatasetError) as caught:
        load_dataset(path)
    assert all(len(p) < 1500 for p in caught.value.problems), [len(p) for p in caught.value.problems]
    assert "more)" in str(caught.value)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested more than"),
        ('{"text": "t", "label": ' + "[" * 50_000 + "]" * 50_000 + "}", "nested more than"),
        ('{"text": "t", "label": ' + "7" * 5000 + "}", "longer than 100 characters"),
    ],
    ids=["json-100k-deep", "jsonl-50k-deep", "jsonl-5000-digits"],
)
def test_hostile_json_is_a_problem_not_a_crash(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / ("data.json" if content.startswith("[") else "data.jsonl")
    good = "".join(json.dumps(r) + "\n" for r in _rows(30))
    path.write_text(content + "\n" + (good if not content.startswith("[") else ""))
    with pytest.raises(DatasetError, match=fragment):
        load_dataset(path)


def test_label_beyond_float_range_is_a_problem(tmp_path: Path) -> None:
    from models.data.labels import as_number, parse_labels

    assert as_number(10**400) is None  # was an OverflowError
    parsed = parse_labels(["a", "b", 10**400], [1, 2, 3])
    assert parsed.values[2] is None and "at most 200 characters" in parsed.problems[0]
    path = tmp_path / "huge.jsonl"
    big = '{"text": "big one", "label": 1' + "0" * 400 + "}\n"
    path.write_text("".join(json.dumps(r) + "\n" for r in _rows(30)) + big)
    with pytest.raises(DatasetError, match="row 31: a number is longer than 100 characters"):
        load_dataset(path)
    csv_path = tmp_path / "huge.csv"
    csv_path.write_bytes(_csv(_rows(30)) + b"big one,1" + b"0" * 400 + b"\n")
    with pytest.raises(DatasetError, match="at most 200 characters .* on row 31"):
        load_dataset(csv_path)
    regression = tmp_path / "huge_regression.csv"
    regression.write_bytes(_csv(_rows(30, regression=True)) + b"another text,1e300\n")
    with pytest.raises(DatasetError, match="within"):
        load_dataset(regression, task_kind="regression")


def test_api_wording_names_fields_and_cli_wording_names_flags(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes(_csv(_rows(20)).replace(b"says", "s\xe9ys".encode("latin-1")))
    with pytest.raises(DatasetError) as api:
        load_dataset(path, option_style="api")
    with pytest.raises(DatasetError) as cli:
        load_dataset(path)
    assert "encoding=latin-1" in str(api.value) and "--" not in str(api.value)
    assert "--encoding latin-1" in str(cli.value)
    with pytest.raises(DatasetError) as api:
        load_dataset(path, encoding="latin-1", text_column="body", option_style="api")
    assert "text_column 'body' is not a column" in str(api.value) and "--" not in str(api.value)


def test_small_regression_file_gets_a_dev_split(tmp_path: Path) -> None:
    path = tmp_path / "twenty.csv"
    path.write_bytes(_csv(_rows(20, regression=True)))
    dataset = load_dataset(path, task_kind="regression")
    assert len(dataset.dev) == 2 and len(dataset.train) == 18
    again = load_dataset(path, task_kind="regression")
    assert again.digest() == dataset.digest()  # still deterministic
    path.write_bytes(_csv(_rows(10, regression=True)))  # the stated minimum
    ten = load_dataset(path, task_kind="regression")
    assert len(ten.dev) == 1 and len(ten.train) == 9


def test_single_row_classes_explain_the_empty_dev(tmp_path: Path) -> None:
    path = tmp_path / "singletons.csv"
    path.write_bytes(_csv([{"text": f"text {i}", "label": f"c{i}"} for i in range(12)]))
    with pytest.raises(DatasetError, match="every class has a single row"):
        load_dataset(path)


def test_small_classification_file_with_many_classes_keeps_dev_classes_in_train(tmp_path: Path) -> None:
    path = tmp_path / "classes.csv"
    rows = [{"text": f"text {i} words {i * 3}", "label": f"class{i % 10}"} for i in range(20)]
    path.write_bytes(_csv(rows))
    dataset = load_dataset(path)
    assert dataset.dev and {ex.label for ex in dataset.dev} <= set(dataset.label_names)


def test_builtin_names_never_resolve_to_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from models.data.loader import builtin_request, load_builtin_request

    monkeypatch.chdir(tmp_path)
    (tmp_path / "secret.csv").write_bytes(_csv(_rows(30)))
    (tmp_path / "config.json").write_text('{"password": "x", "token": "y"}')
    messages = []
    for name in ("secret.csv", "config.json", "missing.csv"):
        with pytest.raises(DatasetError) as caught:
            load_builtin_request(name)
        messages.append(str(caught.value).replace(repr(name), "NAME"))
    assert len(set(messages)) == 1 and "password" not in messages[0]
    assert builtin_request("rt_polarity_200@50") == ("rt_polarity_200", 50)


# ---- property: random and mutated files raise DatasetError or load, nothing else -----------------
FORMATS = [".csv", ".tsv", ".jsonl", ".json", ".parquet"]
NAMES = ["text", "label", "sentence", "target", "split", "x", "", "text", "é", "a,b", '"q"']
# Any code point, with the troublesome ones (lone surrogates, NUL, separators, BOM) made likely.
ODD_CHARS = st.one_of(
    st.characters(exclude_categories=()),
    st.sampled_from(["\ud800", "\udfff", "\x00", "\x7f", "\u2028", "\ufeff"]),
)
CELLS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.text(ODD_CHARS, max_size=10),
    st.sampled_from(["", "nan", "train", "dev", "test", "1e400", "-0", "1" + "0" * 400, "\x00", "a\nb"]),
    st.lists(st.integers(), max_size=3),
)


def encode_table(fmt: str, columns: list[str], rows: list[list[Any]]) -> bytes:
    """A table as a file in ``fmt`` (values that a format cannot hold are written as text)."""
    if fmt in (".csv", ".tsv"):
        import csv

        out = io.StringIO()
        writer = csv.writer(out, delimiter="\t" if fmt == ".tsv" else ",")
        writer.writerow(columns)
        writer.writerows([["" if v is None else str(v) for v in row] for row in rows])
        return out.getvalue().encode("utf-8", "surrogatepass")
    if fmt in (".jsonl", ".json"):
        records = [dict(zip(columns, row, strict=False)) for row in rows]
        if fmt == ".json":
            return json.dumps(records).encode("utf-8", "surrogatepass")
        return "".join(json.dumps(r) + "\n" for r in records).encode("utf-8", "surrogatepass")
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = list(dict.fromkeys(columns)) or ["text"]

    def cell(row: list[Any], i: int) -> str | None:  # Parquet strings are UTF-8: no surrogates
        value = row[i] if i < len(row) else None
        return None if value is None else str(value).encode("utf-8", "replace").decode("utf-8")

    data = {n: [cell(row, i) for row in rows] for i, n in enumerate(names)}
    sink = io.BytesIO()
    pq.write_table(pa.table(data), sink)
    return sink.getvalue()


@st.composite
def data_files(draw: st.DrawFn) -> tuple[str, bytes]:
    """``(file name, bytes)``: a random table in a random format and codec, maybe mutated."""
    fmt = draw(st.sampled_from(FORMATS))
    codec = "" if fmt == ".parquet" else draw(st.sampled_from(["", *CODECS]))
    columns = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=4))
    width = len(columns)
    rows = draw(st.lists(st.lists(CELLS, min_size=width, max_size=width), max_size=25))
    if draw(st.booleans()):  # a plausible dataset (often valid), which mutations may then damage
        columns = ["text", "label"]
        labels = CELLS if draw(st.integers(0, 3)) == 0 else st.sampled_from(["pos", "neg", 0, 1, 2])
        wide = draw(st.booleans())  # any code point: surrogates, control characters
        words = st.text(ODD_CHARS, max_size=8) if wide else st.text(max_size=8)
        size = draw(st.integers(5, 30))
        rows = [[f"row {i} says {draw(words)}", draw(labels)] for i in range(size)]
    raw = encode_table(fmt, columns, rows)
    raw = CODECS[codec](raw) if codec else raw
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2, 3]))):
        kind = draw(st.sampled_from(["flip", "cut", "insert"]))
        at = draw(st.integers(0, max(len(raw) - 1, 0)))
        if kind == "flip" and raw:
            raw = raw[:at] + bytes([raw[at] ^ draw(st.integers(1, 255))]) + raw[at + 1 :]
        elif kind == "cut":
            raw = raw[:at]
        else:
            raw = raw[:at] + draw(st.binary(min_size=1, max_size=16)) + raw[at:]
    return f"data{fmt}{codec}", raw


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=data_files())
def test_any_file_loads_or_raises_a_dataset_error(tmp_path: Path, case: tuple[str, bytes]) -> None:
    name, raw = case
    path = tmp_path / name
    path.write_bytes(raw)
    try:
        dataset = load_dataset(path, max_bytes=1 << 20, max_rows=1000, option_style="api")
    except DatasetError as err:
        assert err.message and all(len(p) < 2000 for p in err.problems)
        assert not re.search(r"--[a-z]", str(err).replace(str(tmp_path), ""))  # no CLI flag
    else:
        assert len(dataset.train) > 0 and len(dataset.dev) > 0


def test_codecs_that_produce_surrogates_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "escaped.csv"
    path.write_bytes(_csv(_rows(20)).replace(b"says", b"s\\ud800ys\xff"))
    with pytest.raises(DatasetError, match="unpaired surrogates"):
        load_dataset(path, encoding="unicode_escape")
    pair = tmp_path / "emoji.jsonl"
    rows = [{"text": f"row {i} \U0001f600", "label": "ab"[i % 2]} for i in range(20)]
    pair.write_text("".join(json.dumps(r) + "\n" for r in rows))  # escaped as a valid pair
    assert "\U0001f600" in load_dataset(pair).train[0].text


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ('[{"text": "a", "label": 1},]', "trailing comma"),
        ('[{"text": "a", "label": 1} {"text": "b"}]', "Expecting ',' delimiter"),
        ('[{"text": "a", "label": 1}', "Expecting ',' delimiter"),
        ('[{"text": "a", "label": 1}] trailing', "Extra data"),
    ],
)
def test_json_array_is_parsed_as_strictly_as_json(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "array.json"
    path.write_text(content)
    with pytest.raises(DatasetError, match=fragment):
        read_table(path)
    with pytest.raises(json.JSONDecodeError):
        json.loads(content)


def test_huge_json_array_stops_at_max_rows(tmp_path: Path) -> None:
    path = tmp_path / "many.json"
    path.write_text("[" + ",".join(['{"text": "t", "label": 1}'] * 5000) + "]")
    with pytest.raises(DatasetLimitError, match="more than max_rows=100"):
        read_table(path, max_rows=100)
    assert len(read_table(path).rows) == 5000


@pytest.mark.parametrize("fmt", [".csv", ".jsonl", ".parquet"])
def test_cell_count_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    monkeypatch.setattr(readers, "MAX_CELLS", 1000)
    columns = ["text", "label", *(f"c{i}" for i in range(48))]
    path = tmp_path / f"wide{fmt}"
    path.write_bytes(encode_table(fmt, columns, [["t", "a", *([""] * 48)] for _ in range(30)]))
    with pytest.raises(DatasetLimitError, match="more than 1000 cells") as caught:
        read_table(path)
    assert caught.value.limit == "cells"
    path.write_bytes(encode_table(fmt, columns, [["t", "a", *([""] * 48)] for _ in range(20)]))
    assert len(read_table(path).rows) == 20


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(text=st.text(st.sampled_from(["a", ",", '"', "\r", "\n", "é"]), max_size=40))
def test_lines_split_like_a_newline_free_string_io(text: str) -> None:
    assert list(readers._lines(text)) == list(io.StringIO(text, newline=""))


def test_undecodable_lines_are_listed_up_to_a_bound(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(b"text,label\n" + b"caf\xe9 au lait,a\n" * 5000)
    with pytest.raises(DatasetError) as caught:
        load_dataset(path, option_style="api")
    message = str(caught.value)
    assert "line 2 is invalid" not in message and "(line 2)" in message
    assert "lines 2, 3, 4," in message and "21, ..." in message and len(message) < 600
