"""Read a CSV, TSV, JSON-lines or Parquet file into plain columns, finding every malformed row.

Readers never guess column meaning and never drop data silently: a malformed record is left out
of the table and named in ``RawTable.problems`` (with its 1-based data row number), so the loader
can report it together with every other problem. Faults that leave nothing to check (missing file,
bytes that cannot be decoded, an empty file) raise :class:`DatasetError` at once.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import lzma
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.data.problems import fmt_rows
from models.errors import DatasetError

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
FORMATS |= {".parquet": "parquet", ".pq": "parquet"}
_DECOMPRESS = {".gz": gzip.decompress, ".bz2": bz2.decompress, ".xz": lzma.decompress}
_CSV_ERRORS = {
    "unexpected end of data": "a quoted field is never closed (unbalanced '\"')",
    "',' expected after '\"'": 'text follows a closing quote (use "" for a literal quote inside quotes)',
    "'\\t' expected after '\"'": 'text follows a closing quote (use "" for a literal quote inside quotes)',
}


@dataclass
class RawTable:
    """A file's records as columns of raw values, before any validation.

    Attributes:
        source: The file, as named in messages.
        columns: Column names in file order.
        data: Column name -> one raw value per kept record.
        rows: The 1-based data row number of each kept record (header excluded).
        encoding: The text encoding used (None for Parquet).
        problems: Malformed records, each naming its row; those records are not in ``data``.
        rows_read: Records seen, malformed ones included.
    """

    source: str
    columns: list[str]
    data: dict[str, list[Any]]
    rows: list[int]
    encoding: str | None = None
    problems: list[str] = field(default_factory=list)
    rows_read: int = 0


def file_format(path: Path) -> tuple[str, str | None]:
    """Return ``(format, compression suffix or None)`` for a path, or raise for an unsupported one."""
    suffixes = [s.lower() for s in path.suffixes]
    compression = suffixes[-1] if suffixes and suffixes[-1] in _DECOMPRESS else None
    if compression:
        suffixes = suffixes[:-1]
    fmt = FORMATS.get(suffixes[-1]) if suffixes else None
    if fmt is None or (compression and fmt == "parquet"):
        known = ", ".join(sorted(FORMATS))
        raise DatasetError(
            f"unsupported file type {''.join(path.suffixes) or '(no extension)'!r} for {path}; "
            f"use one of {known} (CSV/TSV/JSON lines may add .gz, .bz2 or .xz)"
        )
    return fmt, compression


def read_table(path: str | Path, encoding: str | None = None) -> RawTable:
    """Read a data file into a :class:`RawTable`.

    Args:
        path: A ``.csv``, ``.tsv``, ``.jsonl``/``.json`` (JSON lines or one JSON array) or
            ``.parquet`` file; text formats may be compressed (``.gz``, ``.bz2``, ``.xz``).
        encoding: Fallback text encoding, tried when the bytes are not valid UTF-8.

    Returns:
        The table; malformed records are listed in ``problems`` and left out.

    Raises:
        DatasetError: Missing file, unsupported type, undecodable bytes, empty file, header only,
            or an unreadable Parquet/JSON document.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"file not found: {path}")
    if not path.is_file():
        raise DatasetError(f"not a file: {path}")
    fmt, compression = file_format(path)
    if fmt == "parquet":
        return _read_parquet(path)
    raw = path.read_bytes()
    if compression:
        try:
            raw = _DECOMPRESS[compression](raw)
        except (OSError, EOFError, lzma.LZMAError) as err:
            raise DatasetError(f"cannot decompress {path} ({compression}): {err}") from err
    if not raw.strip():
        raise DatasetError(f"file is empty: {path}")
    text, used = decode(raw, encoding, str(path))
    if fmt == "jsonl":
        table = _parse_json(text, str(path))
    else:
        table = _parse_delimited(text, "\t" if fmt == "tsv" else ",", str(path))
    table.encoding = used
    return table


def decode(raw: bytes, encoding: str | None, source: str) -> tuple[str, str]:
    """Decode bytes as UTF-8 (BOM allowed), else with the declared ``encoding``.

    Raises:
        DatasetError: Naming the first bad byte's offset and the lines that hold bad bytes.
    """
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16"), "utf-16"
    try:
        return raw.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError as err:
        first = err
    tried = "UTF-8"
    if encoding:
        try:
            return raw.decode(encoding), encoding
        except LookupError as err:
            raise DatasetError(f"unknown encoding {encoding!r}") from err
        except UnicodeDecodeError as err:
            first, tried = err, f"UTF-8 or {encoding}"
    codec = encoding or "utf-8"
    bad_lines = [i for i, line in enumerate(raw.split(b"\n"), 1) if not _decodes(line, codec)]
    offset = first.start
    line = raw.count(b"\n", 0, offset) + 1
    raise DatasetError(
        f"cannot decode {source} as {tried}: byte 0x{raw[offset]:02x} at offset {offset} (line {line}) "
        f"is invalid; undecodable bytes on {fmt_rows(bad_lines).replace('row', 'line')}. "
        "Pass the file's encoding, e.g. --encoding latin-1 or --encoding cp1252"
    )


def _decodes(data: bytes, codec: str) -> bool:
    try:
        data.decode(codec)
    except UnicodeDecodeError:
        return False
    return True


def _unique_names(header: list[str], problems: list[str]) -> list[str]:
    names: list[str] = []
    for i, name in enumerate(header, 1):
        name = name.strip() or f"column_{i}"
        if name in names:
            problems.append(f"duplicate column name {name!r} (column {i}); column names must be unique")
            name = f"{name}.{i}"
        names.append(name)
    return names


def _parse_delimited(text: str, delimiter: str, source: str) -> RawTable:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    kind = "TSV" if delimiter == "\t" else "CSV"
    problems: list[str] = []
    try:
        header = next(reader)
    except csv.Error as err:
        raise DatasetError(f"malformed {kind} header in {source}: {err}") from err
    names = _unique_names(header, problems)
    data: dict[str, list[Any]] = {name: [] for name in names}
    rows: list[int] = []
    record = 0
    while True:
        start = reader.line_num + 1
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            record += 1
            why = _CSV_ERRORS.get(str(err), str(err))
            if str(err).startswith("field larger than field limit"):
                why = f"a field is over {csv.field_size_limit()} characters (an unclosed quote running on?)"
            problems.append(f"row {record} (line {start}): malformed {kind}: {why}")
            if reader.line_num < start:  # no progress: the reader is stuck at the end
                break
            continue
        if not values or (len(values) == 1 and not values[0].strip() and len(names) > 1):
            continue  # blank line
        record += 1
        if len(values) != len(names):
            problems.append(
                f"row {record} (line {start}): expected {len(names)} fields, found {len(values)}"
                + (" (a text with an unquoted delimiter?)" if len(values) > len(names) else "")
            )
            continue
        rows.append(record)
        for name, value in zip(names, values, strict=True):
            data[name].append(value)
    if record == 0:
        raise DatasetError(f"{source} has a header but no data rows")
    return RawTable(source, names, data, rows, problems=problems, rows_read=record)


def _parse_json(text: str, source: str) -> RawTable:
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as err:
            raise DatasetError(
                f"malformed JSON in {source}: {err.msg} at line {err.lineno}, column {err.colno}"
            ) from err
        records = list(enumerate(items, 1))
        problems: list[str] = []
        malformed = 0
    else:
        records, problems, malformed = [], [], 0
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append((number, json.loads(line)))
            except json.JSONDecodeError as err:
                malformed += 1
                problems.append(f"row {number}: malformed JSON: {err.msg} at column {err.colno}")
    names: list[str] = []
    kept: list[tuple[int, dict[str, Any]]] = []
    for number, item in records:
        if not isinstance(item, dict):
            problems.append(f"row {number}: expected a JSON object, found {type(item).__name__}")
            continue
        kept.append((number, item))
        names.extend(k for k in item if k not in names)
    rows_read = len(records) + malformed
    if rows_read == 0:
        raise DatasetError(f"{source} has no data rows")
    data = {name: [item.get(name) for _, item in kept] for name in names}
    return RawTable(source, names, data, [n for n, _ in kept], problems=problems, rows_read=rows_read)


def _read_parquet(path: Path) -> RawTable:
    import pyarrow as pa  # lazy: pyarrow is heavy and only Parquet needs it
    import pyarrow.parquet as pq

    if path.stat().st_size == 0:
        raise DatasetError(f"file is empty: {path}")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        raise DatasetError(f"not a readable Parquet file: {path} ({err})") from err
    if table.num_rows == 0:
        raise DatasetError(f"{path} has no data rows")
    names = [str(n) for n in table.column_names]
    data = {name: table.column(i).to_pylist() for i, name in enumerate(names)}
    rows = list(range(1, table.num_rows + 1))
    return RawTable(str(path), names, data, rows, encoding=None, rows_read=table.num_rows)
