"""Parquet cache of parsed built-in datasets, keyed by content.

Parsing, validating and splitting the 38k tweets takes about a second on a busy 2-core machine; the
cached Parquet loads in a fraction of that. The key hashes the source (see
:func:`source_fingerprint`), the dataset's options and the code of this package, so editing either
the data or the parsing code invalidates the entry without anyone having to remember a version.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
from functools import cache
from pathlib import Path

from models.data.dataset import DatasetReport, Example, TextDataset

logger = logging.getLogger(__name__)
_PACKAGE = Path(__file__).resolve().parent


@cache
def code_fingerprint() -> str:
    """SHA-256 of this package's source (and the asset locators), fixed for the process."""
    sha = hashlib.sha256()
    for path in sorted([*_PACKAGE.glob("*.py"), _PACKAGE.parent / "assets.py"]):
        sha.update(path.name.encode() + b"\0" + path.read_bytes())
    return sha.hexdigest()


def source_fingerprint(path: Path) -> str:
    """SHA-256 of a file's bytes; for a folder, of every file's relative name, size and mtime.

    Folders are fingerprinted by metadata because hashing the 6,000 SpamAssassin emails would
    cost more than the cache saves; installed package files do not change in place unnoticed.
    """
    sha = hashlib.sha256()
    if path.is_file():
        sha.update(path.name.encode() + b"\0" + path.read_bytes())
        return sha.hexdigest()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        stat = file.stat()
        sha.update(f"{file.relative_to(path)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return sha.hexdigest()


def cache_file(cache_dir: Path, name: str, source: Path, options: object) -> Path:
    """Where the parsed dataset for this exact source, options and code lives."""
    key = hashlib.sha256(
        "\0".join((name, repr(options), code_fingerprint(), source_fingerprint(source))).encode()
    ).hexdigest()[:24]
    return cache_dir / "datasets" / f"{name}-{key}.parquet"


def load(path: Path) -> TextDataset | None:
    """The cached dataset, or None when absent or unreadable (then it is rebuilt)."""
    if not path.is_file():
        return None
    import pyarrow.parquet as pq  # lazy: only the cache needs pyarrow

    try:
        table = pq.read_table(path)
        meta = json.loads(table.schema.metadata[b"autodistiller"])
    except Exception as err:  # a truncated or foreign file must never stop a load
        logger.warning("ignoring unreadable dataset cache %s: %s", path, err)
        return None
    columns = {c: table.column(c).to_pylist() for c in ("split", "text", "text_pair", "label")}
    parts: dict[str, list[Example]] = {"train": [], "dev": []}
    for split, text, pair, label in zip(*columns.values(), strict=True):
        parts[split].append(Example(text, pair, label))
    report = meta["report"]
    report["warnings"] = tuple(report["warnings"])
    return TextDataset(
        meta["name"],
        meta["task_kind"],
        meta["is_pair"],
        tuple(meta["label_names"]),
        tuple(parts["train"]),
        tuple(parts["dev"]),
        DatasetReport(**report),
    )


def save(dataset: TextDataset, path: Path) -> None:
    """Write the dataset atomically and remove older entries of the same name; failures only log."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [("train", ex) for ex in dataset.train] + [("dev", ex) for ex in dataset.dev]
    label_type = pa.float64() if dataset.task_kind == "regression" else pa.string()
    table = pa.table(
        {
            "split": pa.array([s for s, _ in rows], pa.string()),
            "text": pa.array([ex.text for _, ex in rows], pa.string()),
            "text_pair": pa.array([ex.text_pair for _, ex in rows], pa.string()),
            "label": pa.array([ex.label for _, ex in rows], label_type),
        }
    )
    meta = {
        "name": dataset.name,
        "task_kind": dataset.task_kind,
        "is_pair": dataset.is_pair,
        "label_names": list(dataset.label_names),
        "report": dataclasses.asdict(dataset.report),
    }
    table = table.replace_schema_metadata({"autodistiller": json.dumps(meta)})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".parquet")
        os.close(fd)
        try:
            pq.write_table(table, tmp)
            os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache is plain data
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        for old in path.parent.glob(f"{dataset.name}-*.parquet"):
            if old != path:
                old.unlink(missing_ok=True)
    except OSError as err:  # a read-only cache only costs speed
        logger.warning("could not write dataset cache %s: %s", path, err)
