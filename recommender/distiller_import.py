"""Importer for the Distiller paper's released sweep table (``shared/distiller-spec.md`` §7).

The table is read as published: cells may carry stray spaces, ``mixup`` is ``TRUE``/``FALSE``,
``alpha`` holds a placeholder (0.1) on non-MI rows, and the augmentation pipeline is encoded as
1-based order positions in the ``contextual``, ``backtranslation`` and ``random`` columns (0 =
unused). Student and teacher names map to :class:`~models.config.ModelDescriptor` facts; unknown
names are kept with missing descriptor fields. Every source cell is kept in ``record.raw``.

``baseline_score`` is the GLUE CBOW baseline x100, not a no-KD student score, so it is stored
only as ``raw["baseline_score"]``. The teacher score is recovered as ``score / ratio``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from models.config import KDConfig, ModelDescriptor
from models.errors import DatasetError
from recommender.records import SweepRecord

TABLE_COLUMNS = (
    "Model",
    "Teacher",
    "intermediate_loss_type",
    "alpha",
    "intermediate_strategy",
    "kd_loss_type",
    "mixup",
    "repeated_aug",
    "aug_p",
    "#example",
    "score",
    "task",
    "ratio",
    "baseline_score",
    "contextual",
    "backtranslation",
    "random",
)
AUG_COLUMNS = ("contextual", "backtranslation", "random")
PAPER_INTERMEDIATE = ("mi", "mse", "cos", "pkd", "ce")
PAPER_KD = ("ce", "mse")
PAPER_STRATEGIES = ("skip", "last", "emd")
PAPER_METRIC = "paper_best_dev"

# Model facts from spec §7 (layers, hidden size, parameters). Family and vocabulary are public
# facts of the checkpoints: TinyBERT, BERT-* and ELECTRA share the uncased BERT WordPiece vocabulary.
_BERT_VOCAB = "bert-base-uncased-wordpiece"
PAPER_MODELS: Mapping[str, ModelDescriptor] = {
    d.name: d
    for d in (
        ModelDescriptor("TinyBERT4", "bert", 4, 312, 14_500_000, 12, _BERT_VOCAB),
        ModelDescriptor("TinyBERT6", "bert", 6, 768, 67_000_000, 12, _BERT_VOCAB),
        ModelDescriptor("BERT_TINY", "bert", 2, 128, 4_400_000, 2, _BERT_VOCAB),
        ModelDescriptor("BERT_MINI", "bert", 4, 256, 11_000_000, 4, _BERT_VOCAB),
        ModelDescriptor("BERT_SMALL", "bert", 4, 512, 29_000_000, 8, _BERT_VOCAB),
        ModelDescriptor("BERT_MEDIUM", "bert", 8, 512, 42_000_000, 8, _BERT_VOCAB),
        ModelDescriptor("BERT_BASE", "bert", 12, 768, 110_000_000, 12, _BERT_VOCAB),
        ModelDescriptor("ELECTRA_SMALL", "electra", 12, 256, 14_000_000, 4, _BERT_VOCAB),
        ModelDescriptor("ELECTRA_BASE", "electra", 12, 768, 110_000_000, 12, _BERT_VOCAB),
        ModelDescriptor("ELECTRA-large", "electra", 24, 1024, 335_000_000, 16, _BERT_VOCAB),
        ModelDescriptor("Roberta-large", "roberta", 24, 1024, 355_000_000, 16, "roberta-bpe"),
    )
}
_MODEL_LOOKUP = {name.upper().replace("-", "_"): d for name, d in PAPER_MODELS.items()}

# Public facts of the GLUE tasks the table covers: (is_pair, n_labels; 1 = regression).
GLUE_TASKS: Mapping[str, tuple[int, int]] = {
    "mnli": (1, 3),
    "qqp": (1, 2),
    "qnli": (1, 2),
    "sst2": (0, 2),
    "cola": (0, 2),
    "mrpc": (1, 2),
    "rte": (1, 2),
    "stsb": (1, 1),
}


def paper_model(name: str) -> ModelDescriptor:
    """The descriptor of a paper model name; an unknown name keeps only the name."""
    clean = name.strip()
    found = _MODEL_LOOKUP.get(clean.upper().replace("-", "_"))
    return found if found is not None else ModelDescriptor(name=clean)


def task_key(task: str) -> str:
    """Join key for task names (``SST-2`` and ``sst2`` are the same task)."""
    return "".join(ch for ch in task.lower() if ch.isalnum())


def _rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, stripped cells) per non-blank data row; header names stripped too."""
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise DatasetError(f"{path.name} is empty")
        names = [h.strip() for h in header]
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) > len(names) and any(c.strip() for c in row[len(names) :]):
                raise DatasetError(f"{path.name} line {reader.line_num}: more cells than header columns")
            cells = [c.strip() for c in row] + [""] * (len(names) - len(row))
            yield reader.line_num, dict(zip(names, cells, strict=False))


def _header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        return [h.strip() for h in next(csv.reader(fh), [])]


def _num(cells: dict[str, str], col: str, problems: list[str], *, required: bool = True) -> float | None:
    text = cells.get(col, "")
    if text == "" or text.lower() in ("nan", "na"):
        if required:
            problems.append(f"{col} is empty")
        return None
    try:
        return float(text)
    except ValueError:
        problems.append(f"{col}={text!r} is not a number")
        return None


def _bool(text: str, col: str, problems: list[str]) -> bool:
    low = text.lower()
    if low in ("true", "1", "yes"):
        return True
    if low in ("false", "0", "no"):
        return False
    problems.append(f"{col}={text!r} is not TRUE/FALSE")
    return False


def _choice(text: str, col: str, options: tuple[str, ...], problems: list[str]) -> str:
    low = text.lower()
    if low not in options:
        problems.append(f"{col}={text!r} is not one of {', '.join(options)}")
    return low


def _pipeline(cells: dict[str, str], problems: list[str]) -> tuple[str, ...]:
    positions: dict[int, str] = {}
    for col in AUG_COLUMNS:
        pos = _num(cells, col, problems, required=False) or 0.0
        if pos < 0 or pos != int(pos):
            problems.append(f"{col}={cells.get(col)!r} is not an order position (0 = unused)")
            continue
        if pos:
            if int(pos) in positions:
                problems.append(f"{col} and {positions[int(pos)]} share order position {int(pos)}")
            positions[int(pos)] = col
    return tuple(positions[p] for p in sorted(positions))


def _kd_config(cells: dict[str, str], problems: list[str]) -> KDConfig | None:
    loss = _choice(
        cells.get("intermediate_loss_type", ""), "intermediate_loss_type", PAPER_INTERMEDIATE, problems
    )
    strategy = _choice(
        cells.get("intermediate_strategy", ""), "intermediate_strategy", PAPER_STRATEGIES, problems
    )
    kd = _choice(cells.get("kd_loss_type", ""), "kd_loss_type", PAPER_KD, problems)
    mixup = _bool(cells.get("mixup", ""), "mixup", problems)
    # alpha is a placeholder on non-MI rows: read it only where it means something.
    alpha = _num(cells, "alpha", problems) if loss == "mi" else None
    repeated = _num(cells, "repeated_aug", problems, required=False) or 1.0
    aug_p = _num(cells, "aug_p", problems, required=False)
    pipeline = _pipeline(cells, problems)
    if problems:
        return None
    if repeated < 1 or repeated != int(repeated):
        problems.append(f"repeated_aug={cells.get('repeated_aug')!r} is not a positive integer")
        return None
    aug: dict[str, Any] = {
        "pipeline": pipeline,
        "repeated_aug": int(repeated),
        "mode": "repeated" if repeated > 1 else "pipeline",
    }
    if aug_p:  # 0 / empty on rows without augmentation: keep the config default
        aug["aug_p"] = aug_p
    try:
        return KDConfig.model_validate(
            {
                "augmentation": aug,
                "mixup": {"enabled": mixup},
                "prediction": {"loss": kd, "temperature": 1.0},
                "intermediate": {"loss": loss, "alpha": alpha, "strategy": strategy},
            }
        )
    except Exception as exc:  # pydantic.ValidationError: report it as a row problem
        problems.append(f"not a valid KD pipeline: {exc}")
        return None


def read_distiller_features(path: str | Path) -> dict[str, dict[str, float | None]]:
    """Read the companion dataset-features file: task key -> meta-features.

    Columns ``"0".."99"`` become ``paper_feat_0..99``; ``#example`` gives the exact ``n_train``;
    ``#label`` gives ``n_labels`` (1 = regression).

    Raises:
        DatasetError: Missing ``task`` column or a non-numeric cell (row named).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"features file not found: {path}")
    if "task" not in _header(path):
        raise DatasetError(f"{path.name}: no 'task' column")
    out: dict[str, dict[str, float | None]] = {}
    for line, cells in _rows(path):
        problems: list[str] = []
        feats: dict[str, float | None] = {}
        for col in cells:
            if col == "task":
                continue
            value = _num(cells, col, problems, required=False)
            if col.isdigit():
                feats[f"paper_feat_{col}"] = value
            elif col == "#example" and value is not None:
                feats["n_train"] = value
            elif col == "#label" and value is not None:
                feats["n_labels"] = value
                feats["is_regression"] = 1.0 if value == 1 else 0.0
        if problems:
            raise DatasetError(f"{path.name} line {line}", problems)
        out[task_key(cells["task"])] = feats
    return out


def _meta_features(
    task: str, n_example: float | None, teacher_score: float | None, extra: Mapping[str, float | None]
) -> dict[str, float | None]:
    meta: dict[str, float | None] = {"n_train": n_example}
    facts = GLUE_TASKS.get(task_key(task))
    if facts is not None:
        meta["is_pair"] = float(facts[0])
        meta["n_labels"] = float(facts[1])
        meta["is_regression"] = 1.0 if facts[1] == 1 else 0.0
    meta.update(extra)  # the features file is exact where the table is rounded
    n = meta.get("n_train")
    meta["log_n_train"] = math.log10(n) if n and n > 0 else None
    meta["teacher_score"] = teacher_score
    return meta


def read_distiller_table(
    table_path: str | Path, features_path: str | Path | None = None
) -> list[SweepRecord]:
    """Read the paper's sweep table into one :class:`SweepRecord` per data row, in file order.

    Args:
        table_path: The sweep table CSV (spec §7 columns).
        features_path: The optional dataset-features CSV; its rows join on the task name.

    Returns:
        Records with ``source="imported"``; blank rows are skipped.

    Raises:
        DatasetError: Missing columns, or rows that cannot be read (every bad row is listed).
    """
    table_path = Path(table_path)
    if not table_path.is_file():
        raise DatasetError(f"sweep table not found: {table_path}")
    missing = [c for c in TABLE_COLUMNS if c not in _header(table_path)]
    if missing:
        raise DatasetError(f"{table_path.name} is not a Distiller sweep table: missing columns {missing}")
    features = read_distiller_features(features_path) if features_path is not None else {}
    records: list[SweepRecord] = []
    errors: list[str] = []
    for line, cells in _rows(table_path):
        problems: list[str] = []
        config = _kd_config(cells, problems)
        score = _num(cells, "score", problems)
        ratio = _num(cells, "ratio", problems)
        n_example = _num(cells, "#example", problems, required=False)
        task, student, teacher = cells["task"], cells["Model"], cells["Teacher"]
        for col, text in (("task", task), ("Model", student), ("Teacher", teacher)):
            if not text:
                problems.append(f"{col} is empty")
        if problems:
            errors.append(f"line {line}: " + "; ".join(problems))
            continue
        # A zero ratio (a collapsed run with score 0) says nothing about the teacher's score.
        teacher_score = score / ratio if ratio else None
        if teacher_score is not None and not math.isfinite(teacher_score):
            teacher_score = None
        records.append(
            SweepRecord(
                dataset_id=task.lower(),
                teacher=paper_model(teacher),
                student=paper_model(student),
                kd_config=config,
                student_score=score,
                teacher_score=teacher_score,
                ratio=ratio,
                meta_features=_meta_features(
                    task, n_example, teacher_score, features.get(task_key(task), {})
                ),
                metric=PAPER_METRIC,
                code_version="distiller-paper",
                source="imported",
                run_id=f"{table_path.stem}:{line}",
                raw=dict(cells),
            )
        )
    if errors:
        raise DatasetError(f"{table_path.name}: {len(errors)} unreadable rows", errors[:50])
    return records
