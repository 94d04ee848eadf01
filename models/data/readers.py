"""Read a CSV, TSV, JSON-lines or Parquet file into plain columns, finding every malformed row.

Readers never guess column meaning and never drop data silently: a malformed record is left out
of the table and named in ``RawTable.problems`` (with its 1-based data row number), so the loader
can report it together with every other problem. Faults that leave nothing to check (missing file,
bytes that cannot be decoded, an empty file) raise :class:`DatasetError` at once.

Untrusted files are read within bounds: compressed files are inflated as a stream and refused once
they pass ``max_bytes`` (a small "bomb" never expands in memory), reading stops past ``max_rows``,
and the column count, JSON nesting depth and number length are capped, so no input can exhaust
memory or the interpreter's stack.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import json
import lzma
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from models.data.problems import MAX_LISTED, OptionStyle, clip, fmt_rows, option, shown
from models.errors import DatasetError

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
FORMATS |= {".parquet": "parquet", ".pq": "parquet"}
# An xz header may ask for a 1.5 GiB dictionary; xz -9 files need 64 MiB to decode.
XZ_MEMLIMIT = 128 << 20


class _XzFile(io.BufferedReader):
    """``lzma.open`` with a decoder memory limit (which ``LZMAFile`` does not expose)."""

    def __init__(self, path: Path, mode: str = "rb") -> None:
        import _compression  # the stdlib's shared stream reader behind gzip, bz2 and lzma files

        self._file = open(path, "rb")  # noqa: SIM115 - closed in close()
        reader = _compression.DecompressReader(
            self._file, lzma.LZMADecompressor, trailing_error=lzma.LZMAError, memlimit=XZ_MEMLIMIT
        )
        super().__init__(reader)

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._file.close()


# Every codec accepted for text formats; each is read as a stream (see _read_bytes).
_OPENERS: dict[str, Callable[..., IO[bytes]]] = {".gz": gzip.open, ".bz2": bz2.open, ".xz": _XzFile}
COMPRESSIONS = tuple(_OPENERS)
_DECOMPRESS_ERRORS = (OSError, EOFError, lzma.LZMAError, zlib.error, ValueError)
_CHUNK = 1 << 20
MAX_COLUMNS = 1024
MAX_CELLS = 10_000_000
MAX_JSON_DEPTH = 32
MAX_NUMBER_CHARS = 100
MAX_ROW_PROBLEMS = 50  # malformed rows listed one by one; the rest are counted
_PARQUET_BATCH = 8192
_CSV_ERRORS = {
    "unexpected end of data": "a quoted field is never closed (unbalanced '\"')",
    "',' expected after '\"'": 'text follows a closing quote (use "" for a literal quote inside quotes)',
    "'\\t' expected after '\"'": 'text follows a closing quote (use "" for a literal quote inside quotes)',
}


class DatasetLimitError(DatasetError):
    """A file is over a size limit: refused before it is read in full.

    Attributes:
        limit: Which one: ``bytes`` (decompressed or decoded), ``rows`` or ``cells`` (rows x columns).
    """

    code = "dataset_too_large"

    def __init__(self, message: str, limit: str) -> None:
        super().__init__(message)
        self.limit = limit


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


class _RowProblems:
    """Per-row problems: the first ``MAX_ROW_PROBLEMS`` are kept, the rest only counted."""

    def __init__(self) -> None:
        self.listed: list[str] = []
        self.more = 0

    def add(self, problem: str) -> None:
        if len(self.listed) < MAX_ROW_PROBLEMS:
            self.listed.append(problem)
        else:
            self.more += 1

    def all(self) -> list[str]:
        return self.listed + ([f"... and {self.more} more malformed rows"] if self.more else [])


def file_format(path: Path) -> tuple[str, str | None]:
    """Return ``(format, compression suffix or None)`` for a path, or raise for an unsupported one."""
    suffixes = [s.lower() for s in path.suffixes]
    compression = suffixes[-1] if suffixes and suffixes[-1] in _OPENERS else None
    if compression:
        suffixes = suffixes[:-1]
    fmt = FORMATS.get(suffixes[-1]) if suffixes else None
    if fmt is None or (compression and fmt == "parquet"):
        known = ", ".join(sorted(FORMATS))
        raise DatasetError(
            f"unsupported file type {clip(''.join(path.suffixes)) or '(no extension)'!r} for {path}; "
            f"use one of {known} (CSV/TSV/JSON lines may add {', '.join(COMPRESSIONS)})"
        )
    return fmt, compression


def read_table(
    path: str | Path,
    encoding: str | None = None,
    *,
    max_bytes: int | None = None,
    max_rows: int | None = None,
    option_style: OptionStyle = "cli",
) -> RawTable:
    """Read a data file into a :class:`RawTable`.

    Args:
        path: A ``.csv``, ``.tsv``, ``.jsonl``/``.json`` (JSON lines or one JSON array) or
            ``.parquet`` file; text formats may be compressed (``.gz``, ``.bz2``, ``.xz``).
        encoding: Fallback text encoding, tried when the bytes are not valid UTF-8.
        max_bytes: Most bytes the file may hold once decompressed (Parquet: decoded); None for no limit.
        max_rows: Most data records; reading stops and raises past it. None for no limit.
        option_style: How messages name options (``cli`` flags or ``api`` field names).

    Returns:
        The table; malformed records are listed in ``problems`` and left out.

    Raises:
        DatasetLimitError: Over ``max_bytes`` or ``max_rows``.
        DatasetError: Missing file, unsupported type, undecodable bytes, empty file, header only,
            too many columns, or an unreadable Parquet/JSON document.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"file not found: {path}")
    if not path.is_file():
        raise DatasetError(f"not a file: {path}")
    fmt, compression = file_format(path)
    if fmt == "parquet":
        return _read_parquet(path, max_bytes, max_rows)
    raw = _read_bytes(path, compression, max_bytes)
    if not raw.strip():
        raise DatasetError(f"file is empty: {path}")
    text, used = decode(raw, encoding, str(path), option_style)
    del raw  # the decoded text replaces it: do not hold both while parsing
    if used not in ("utf-8", "utf-16") and _SURROGATE.search(text):  # those two never decode to one
        raise DatasetError(
            f"decoding {path} as {clip(used)!r} gives unpaired surrogates; use a text encoding"
        )
    if fmt == "jsonl":
        table = _parse_json(text, str(path), max_rows)
    else:
        table = _parse_delimited(text, "\t" if fmt == "tsv" else ",", str(path), max_rows)
    table.encoding = used
    return table


def _read_bytes(path: Path, compression: str | None, max_bytes: int | None) -> bytes:
    """The file's bytes, inflated as a stream and refused as soon as they pass ``max_bytes``."""
    if compression is None:
        size = path.stat().st_size
        if max_bytes is not None and size > max_bytes:
            raise DatasetLimitError(f"{path} is {size} bytes, more than the limit of {max_bytes}", "bytes")
        return path.read_bytes()
    chunks: list[bytes] = []
    total = 0
    try:
        with _OPENERS[compression](path, "rb") as stream:
            while True:
                want = _CHUNK if max_bytes is None else min(_CHUNK, max_bytes + 1 - total)
                chunk = stream.read(want)
                if not chunk:
                    break
                total += len(chunk)
                if max_bytes is not None and total > max_bytes:
                    raise DatasetLimitError(
                        f"{path} decompresses to more than the limit of {max_bytes} bytes", "bytes"
                    )
                chunks.append(chunk)
    except _DECOMPRESS_ERRORS as err:
        raise DatasetError(
            f"cannot decompress {path} ({compression[1:]}): the data is corrupt, truncated or over "
            f"a decoder limit ({clip(str(err), 120)})"
        ) from err
    return b"".join(chunks)


def decode(
    raw: bytes, encoding: str | None, source: str, option_style: OptionStyle = "cli"
) -> tuple[str, str]:
    """Decode bytes as UTF-8 (BOM allowed), else with the declared ``encoding``.

    Raises:
        DatasetError: Naming the first bad byte's offset and the lines that hold bad bytes.
    """
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16"), "utf-16"
        except UnicodeError as err:
            raise DatasetError(
                f"cannot decode {source} as UTF-16 (it starts with a UTF-16 byte order mark)"
            ) from err
    try:
        return raw.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError as err:
        first = err
    tried = "UTF-8"
    if encoding:
        try:
            return raw.decode(encoding), encoding
        except LookupError as err:
            raise DatasetError(f"unknown encoding {clip(encoding)!r}") from err
        except UnicodeDecodeError as err:
            first, tried = err, f"UTF-8 or {clip(encoding)}"
        except (UnicodeError, ValueError) as err:  # a codec that fails without a byte offset
            raise DatasetError(f"cannot decode {source} as {clip(encoding)!r}") from err
    bad_lines, more = _bad_lines(raw, encoding or "utf-8")
    offset = min(first.start, len(raw) - 1)
    line = raw.count(b"\n", 0, offset) + 1
    flag = option("encoding", option_style)
    hint = f"{flag} latin-1 or {flag} cp1252" if option_style == "cli" else f"{flag}=latin-1 or {flag}=cp1252"
    raise DatasetError(
        f"cannot decode {source} as {tried}: byte 0x{raw[offset]:02x} at offset {offset} (line {line}) "
        f"is invalid; undecodable bytes on {fmt_rows(bad_lines).replace('row', 'line')}{more}. "
        f"Give the file's encoding, e.g. {hint}"
    )


def _bad_lines(raw: bytes, codec: str, limit: int = MAX_LISTED) -> tuple[list[int], str]:
    """The first ``limit`` line numbers holding undecodable bytes, and ``", ..."`` if there are more.

    Decodes onward from each bad byte instead of line by line: splitting a 50 MB file into
    lines would cost a Python object per line.
    """
    view = memoryview(raw)
    lines: list[int] = []
    at, line, seen = 0, 1, 0
    while at < len(raw):
        try:
            codecs.decode(view[at:], codec)
            break
        except UnicodeDecodeError as err:
            bad = at + err.start
            at = max(at + err.end, bad + 1)
        except (UnicodeError, ValueError, TypeError):  # a codec that names no position
            break
        line += raw.count(b"\n", seen, bad)
        seen = bad
        if not lines or lines[-1] != line:
            if len(lines) == limit:
                return lines, ", ..."
            lines.append(line)
    return lines, ""


def _unique_names(header: list[str], problems: list[str]) -> list[str]:
    seen: set[str] = set()  # a set: a wide header must not cost quadratic time
    names: list[str] = []
    for i, name in enumerate(header, 1):
        name = str(name).strip() or f"column_{i}"
        if name in seen:
            problems.append(f"duplicate column name {shown(name)} (column {i}); column names must be unique")
            name = f"{name}.{i}"
        seen.add(name)
        names.append(name)
    return names


def _check_columns(count: int, source: str) -> None:
    if count > MAX_COLUMNS:
        raise DatasetError(f"{source} has {count} columns; at most {MAX_COLUMNS} are supported")


def _too_many_rows(source: str, max_rows: int) -> DatasetLimitError:
    return DatasetLimitError(f"{source} has more than max_rows={max_rows} data rows", "rows")


def _check_cells(rows: int, columns: int, source: str) -> None:
    # A wide table of empty cells costs a list slot per cell: 50 MB of commas would be 400 MB.
    if rows * columns > MAX_CELLS:
        raise DatasetLimitError(f"{source} has more than {MAX_CELLS} cells (rows x columns)", "cells")


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


def _lines(text: str) -> Iterator[str]:
    """The lines of ``text`` with their endings (``\r\n``, ``\r`` or ``\n``), one at a time.

    What ``io.StringIO(text, newline="")`` yields, without its copy of the whole text in 4 bytes
    per character (a 50 MB file took 200 MB more).
    """
    return (match.group() for match in _LINE.finditer(text))


def _parse_delimited(text: str, delimiter: str, source: str, max_rows: int | None = None) -> RawTable:
    reader = csv.reader(_lines(text), delimiter=delimiter, strict=True)
    kind = "TSV" if delimiter == "\t" else "CSV"
    problems: list[str] = []
    row_problems = _RowProblems()
    try:
        header = next(reader)
    except csv.Error as err:
        raise DatasetError(f"malformed {kind} header in {source}: {clip(str(err), 120)}") from err
    _check_columns(len(header), source)
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
            why = _CSV_ERRORS.get(str(err), clip(str(err), 120))
            if str(err).startswith("field larger than field limit"):
                why = f"a field is over {csv.field_size_limit()} characters (an unclosed quote running on?)"
            row_problems.add(f"row {record} (line {start}): malformed {kind}: {why}")
            if reader.line_num < start:  # no progress: the reader is stuck at the end
                break
            continue
        if not values or (len(values) == 1 and not values[0].strip() and len(names) > 1):
            continue  # blank line
        record += 1
        if max_rows is not None and record > max_rows:
            raise _too_many_rows(source, max_rows)
        _check_cells(record, len(names), source)
        if len(values) != len(names):
            row_problems.add(
                f"row {record} (line {start}): expected {len(names)} fields, found {len(values)}"
                + (" (a text with an unquoted delimiter?)" if len(values) > len(names) else "")
            )
            continue
        rows.append(record)
        for name, value in zip(names, values, strict=True):
            data[name].append(value)
    if record == 0:
        raise DatasetError(f"{source} has a header but no data rows")
    return RawTable(source, names, data, rows, problems=problems + row_problems.all(), rows_read=record)


class _JsonProblem(ValueError):
    """A JSON value the reader refuses (too deep, a number too long); the message says which."""


def _parse_number(literal: str) -> int | float:
    # int() of a 5,000-digit literal raises deep inside json (and a long one is no sensible label)
    if len(literal) > MAX_NUMBER_CHARS:
        raise _JsonProblem(f"a number is longer than {MAX_NUMBER_CHARS} characters")
    return float(literal) if any(c in literal for c in ".eE") else int(literal)


# A \ud800-\udfff escape: JSON can spell an unpaired surrogate, which no UTF-8 text (a label
# stored in the database, a tokenizer's input) can hold.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_json(value: Any, limit: int, strings: bool) -> None:
    """Refuse nesting deeper than ``limit`` (iteratively: no stack to overflow) and, with
    ``strings``, unpaired surrogates in keys and strings."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if strings and _SURROGATE.search(item):
                raise _JsonProblem("a string holds an unpaired surrogate escape (\\ud800-\\udfff)")
            continue
        children = (
            [*item, *item.values()] if isinstance(item, dict) else item if isinstance(item, list) else None
        )
        if children is None:
            continue
        if depth > limit:
            raise _JsonProblem(f"JSON nested more than {limit} levels deep")
        stack.extend((child, depth + 1) for child in children)


def _load_json(text: str, limit: int) -> Any:
    """``json.loads`` with bounded numbers and nesting; raises ``_JsonProblem`` or ``JSONDecodeError``."""
    try:
        value = json.loads(text, parse_int=_parse_number, parse_float=_parse_number)
    except RecursionError:
        raise _JsonProblem(f"JSON nested more than {limit} levels deep") from None
    _check_json(value, limit, strings="\\u" in text and _SURROGATE_ESCAPE.search(text) is not None)
    return value


_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder(parse_int=_parse_number, parse_float=_parse_number)


def _json_array(text: str, source: str, max_rows: int | None) -> list[Any]:
    """The elements of a top-level JSON array, decoded one at a time: ``max_rows`` stops a huge
    array of tiny objects before it becomes millions of dicts, and nesting is checked per element.

    Raises:
        json.JSONDecodeError, _JsonProblem: As :func:`_load_json`.
        DatasetLimitError: More than ``max_rows`` elements.
    """
    strings = "\\u" in text and _SURROGATE_ESCAPE.search(text) is not None
    items: list[Any] = []
    at = _WHITESPACE.match(text, text.index("[") + 1).end()
    while not text.startswith("]", at):
        try:
            item, at = _DECODER.raw_decode(text, at)
        except RecursionError:
            raise _JsonProblem(f"JSON nested more than {MAX_JSON_DEPTH} levels deep") from None
        _check_json(item, MAX_JSON_DEPTH, strings)
        items.append(item)
        if max_rows is not None and len(items) > max_rows:
            raise _too_many_rows(source, max_rows)
        at = _WHITESPACE.match(text, at).end()
        if text.startswith(",", at):
            at = _WHITESPACE.match(text, at + 1).end()
            if text.startswith("]", at):
                raise json.JSONDecodeError("Illegal trailing comma before end of array", text, at)
        elif not text.startswith("]", at):
            raise json.JSONDecodeError("Expecting ',' delimiter", text, at)
    if text[at + 1 :].strip():
        raise json.JSONDecodeError("Extra data", text, at + 1)
    return items


def _parse_json(text: str, source: str, max_rows: int | None = None) -> RawTable:
    problems = _RowProblems()
    if text.lstrip().startswith("["):
        try:
            items = _json_array(text, source, max_rows)
        except json.JSONDecodeError as err:
            raise DatasetError(
                f"malformed JSON in {source}: {err.msg} at line {err.lineno}, column {err.colno}"
            ) from err
        except _JsonProblem as err:
            raise DatasetError(f"cannot read {source}: {err}") from err
        records = list(enumerate(items, 1))
        malformed = 0
    else:
        records, malformed = [], 0
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            if max_rows is not None and len(records) + malformed >= max_rows:
                raise _too_many_rows(source, max_rows)
            try:
                records.append((number, _load_json(line, MAX_JSON_DEPTH)))
            except json.JSONDecodeError as err:
                malformed += 1
                problems.add(f"row {number}: malformed JSON: {err.msg} at column {err.colno}")
            except _JsonProblem as err:
                malformed += 1
                problems.add(f"row {number}: {err}")
    names: dict[str, None] = {}  # ordered set of keys, in first-seen order
    kept: list[tuple[int, dict[str, Any]]] = []
    for number, item in records:
        if not isinstance(item, dict):
            problems.add(f"row {number}: expected a JSON object, found {type(item).__name__}")
            continue
        kept.append((number, item))
        names.update(dict.fromkeys(item))
        _check_columns(len(names), source)
        _check_cells(len(kept), len(names), source)
    rows_read = len(records) + malformed
    if rows_read == 0:
        raise DatasetError(f"{source} has no data rows")
    data = {name: [item.get(name) for _, item in kept] for name in names}
    return RawTable(
        source, list(names), data, [n for n, _ in kept], problems=problems.all(), rows_read=rows_read
    )


def _dense_bytes(column: Any) -> int:
    """Bytes a column takes once decoded: a dictionary column counts each row's value in full."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(column.type):
        lengths = pc.binary_length(column.dictionary)
        return int(pc.sum(pc.take(lengths, column.indices)).as_py() or 0) + column.indices.nbytes
    return int(column.nbytes)


def _read_parquet(path: Path, max_bytes: int | None = None, max_rows: int | None = None) -> RawTable:
    import pyarrow as pa  # lazy: pyarrow is heavy and only Parquet needs it
    import pyarrow.parquet as pq

    if path.stat().st_size == 0:
        raise DatasetError(f"file is empty: {path}")
    if max_bytes is not None and path.stat().st_size > max_bytes:
        raise DatasetLimitError(f"{path} is more than the limit of {max_bytes} bytes", "bytes")
    problems: list[str] = []
    try:
        # String columns stay dictionary-encoded while read, so a value repeated a million times
        # is counted (and refused) before it is expanded into a million Python strings.
        schema = pq.read_schema(path)
        strings = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_binary(f.type)]
        file = pq.ParquetFile(path, read_dictionary=strings, schema_depth_limit=MAX_JSON_DEPTH)
        meta = file.metadata
        _check_columns(meta.num_columns, str(path))
        if max_rows is not None and meta.num_rows > max_rows:
            raise _too_many_rows(str(path), max_rows)
        _check_cells(meta.num_rows, meta.num_columns, str(path))
        names = _unique_names([str(n) for n in file.schema_arrow.names], problems)
        data: dict[str, list[Any]] = {name: [] for name in names}
        total = 0
        for batch in file.iter_batches(batch_size=_PARQUET_BATCH, use_threads=False):
            total += sum(_dense_bytes(column) for column in batch.columns)
            if max_bytes is not None and total > max_bytes:
                raise DatasetLimitError(
                    f"{path} decodes to more than the limit of {max_bytes} bytes", "bytes"
                )
            for name, column in zip(names, batch.columns, strict=True):
                data[name].extend(column.to_pylist())
            read = len(data[names[0]]) if names else 0  # metadata can lie: count what arrives
            if max_rows is not None and read > max_rows:
                raise _too_many_rows(str(path), max_rows)
            _check_cells(read, len(names), str(path))
    # pyarrow's own errors, and Python's when a value cannot become a Python object (a timestamp
    # in year 20000, an extension type): all mean the file cannot be read as a table here.
    except (pa.ArrowException, OSError, ValueError, TypeError, ArithmeticError, LookupError) as err:
        raise DatasetError(f"not a readable Parquet file: {path} ({clip(str(err), 120)})") from err
    rows_read = len(next(iter(data.values()), []))
    if rows_read == 0:
        raise DatasetError(f"{path} has no data rows")
    rows = list(range(1, rows_read + 1))
    return RawTable(str(path), names, data, rows, encoding=None, problems=problems, rows_read=rows_read)
