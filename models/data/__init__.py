"""The dataset layer: load, validate, deduplicate and split text datasets. Torch-free.

Files (CSV, TSV, JSON lines, Parquet) and built-in corpora go through the same checks and come
out as one immutable :class:`TextDataset`.
"""

from models.data.builtin import BuiltinInfo, list_builtin, load_builtin
from models.data.dataset import DatasetReport, Example, TextDataset
from models.data.loader import load_dataset, validate_file
from models.data.summary import summarize

__all__ = [
    "BuiltinInfo",
    "DatasetReport",
    "Example",
    "TextDataset",
    "list_builtin",
    "load_builtin",
    "load_dataset",
    "summarize",
    "validate_file",
]
