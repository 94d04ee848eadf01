"""Datasets: upload (size-limited, validated by the engine's loader) or register a built-in one."""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from app.domain import SYSTEM, Caller, Dataset, utcnow
from app.errors import DatasetTooLargeError, InvalidRequestError, UploadTooLargeError
from app.services.meta_features import MetaFeatureComputer
from app.settings import Settings
from app.store import Store
from models.errors import DatasetError

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_COMPRESSION = (".gz", ".bz2", ".xz")
_MAX_PROBLEMS = 50  # problems returned in one error; the rest are counted
_MAX_PROBLEM_CHARS = 1000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def allowed_suffixes() -> tuple[str, ...]:
    """File suffixes the engine's readers accept (pickle-based formats are never among them)."""
    from models.data.readers import FORMATS

    return tuple(FORMATS)


@dataclass(frozen=True)
class UploadOptions:
    """How to read an uploaded table (the same options the job's loader receives)."""

    text_column: str | None = None
    text_pair_column: str | None = None
    label_column: str | None = None
    task_kind: str | None = None
    split_column: str | None = None
    group_column: str | None = None
    dev_fraction: float = 0.1
    encoding: str | None = None

    def as_loader_kwargs(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def safe_suffix(filename: str) -> str:
    """The (compound) suffix of an uploaded file name, checked against the readers' formats.

    Raises:
        InvalidRequestError: An unsupported or missing suffix.
    """
    name = Path(filename or "").name.lower()
    parts = name.split(".")[1:]
    suffix = ""
    if parts and f".{parts[-1]}" in _COMPRESSION:
        suffix = f".{parts.pop()}"
    if not parts or f".{parts[-1]}" not in allowed_suffixes():
        shown = _CONTROL.sub("", Path(filename or "").name)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise InvalidRequestError(
            f"unsupported file {shown!r}: use one of "
            f"{', '.join(allowed_suffixes())} (optionally compressed: {', '.join(_COMPRESSION)})"
        )
    return f".{parts[-1]}{suffix}"


def _public_error(exc: DatasetError, hide: tuple[str, ...], shown: str) -> DatasetError:
    """The loader's error for a client: server paths replaced by ``shown``, problems bounded."""

    def clean(text: str) -> str:
        for path in hide:
            text = text.replace(path, shown)
        return text if len(text) <= _MAX_PROBLEM_CHARS else text[: _MAX_PROBLEM_CHARS - 3] + "..."

    problems = [clean(p) for p in exc.problems[:_MAX_PROBLEMS]]
    if len(exc.problems) > _MAX_PROBLEMS:
        problems.append(f"... and {len(exc.problems) - _MAX_PROBLEMS} more problems")
    headline = clean(exc.message.split(":\n")[0])
    error = DatasetError(headline, problems)
    if problems:  # the details list every problem: the message names the first, not all again
        more = f" (and {len(problems) - 1} more, see details)" if len(problems) > 1 else ""
        error.message = f"{headline}: {problems[0]}{more}"
    return error


def _display_name(filename: str) -> str:
    stem = Path(filename).name.split(".")[0]
    return re.sub(r"[^A-Za-z0-9_.@-]+", "_", stem)[:100] or "dataset"


class DatasetService:
    def __init__(self, store: Store, settings: Settings, meta_features: MetaFeatureComputer) -> None:
        self.store = store
        self.settings = settings
        self.meta_features = meta_features

    def _save_upload(self, stream: BinaryIO, dest: Path) -> int:
        """Copy ``stream`` to ``dest`` in chunks, refusing more than ``max_upload_bytes``."""
        limit = self.settings.limits.max_upload_bytes
        written = 0
        with dest.open("wb") as out:
            while chunk := stream.read(_CHUNK):
                written += len(chunk)
                if written > limit:
                    raise UploadTooLargeError(f"upload exceeds the limit of {limit} bytes")
                out.write(chunk)
        if written == 0:
            raise InvalidRequestError("the uploaded file is empty")
        return written

    def upload(
        self,
        stream: BinaryIO,
        filename: str,
        options: UploadOptions,
        name: str | None = None,
        caller: Caller = SYSTEM,
    ) -> Dataset:
        """Store an uploaded table, validate it, compute its meta-features and register it (as
        ``caller``'s).

        Raises:
            UploadTooLargeError, DatasetTooLargeError: Limits exceeded.
            InvalidRequestError: Unsupported file type.
            DatasetError: The engine's loader found problems (all are listed).
        """
        suffix = safe_suffix(filename)
        dataset_id = self.store.datasets.new_id()
        folder = self.settings.datasets_dir / dataset_id
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"data{suffix}"
        try:
            self._save_upload(stream, path)
            try:
                dataset = self._load(path, options)
            except DatasetError as exc:  # name the user's file, never the server's path
                shown = _CONTROL.sub("", Path(filename).name)[:100] or "upload"
                hide = (str(path), str(folder), str(self.settings.data_dir))
                raise _public_error(exc, hide, shown) from None
            return self._register(
                dataset_id,
                dataset,
                source="upload",
                builtin_name=None,
                filename=_CONTROL.sub("", Path(filename).name)[:255],
                path=path,
                options=options.as_loader_kwargs(),
                name=name or _display_name(filename),
                owner_key_id=caller.key_id,
            )
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def register_builtin(self, builtin: str, name: str | None = None, caller: Caller = SYSTEM) -> Dataset:
        """Register a built-in dataset (``rt_polarity_200``, ``rotten_tomatoes@500``, ...) as
        ``caller``'s; every key can read and use it, only its owner (or an admin) delete it."""
        from models.data.loader import load_builtin_request

        # Names only, never files: the same answer whether or not a file of that name exists.
        dataset = load_builtin_request(builtin)
        self._check_rows(dataset)
        return self._register(
            self.store.datasets.new_id(),
            dataset,
            source="builtin",
            builtin_name=builtin,
            filename=None,
            path=None,
            options={},
            name=name or dataset.name,
            owner_key_id=caller.key_id,
        )

    def _load(self, path: Path, options: UploadOptions) -> Any:
        from models.data import load_dataset
        from models.data.readers import MAX_CELLS, DatasetLimitError

        limits = self.settings.limits
        max_rows = limits.max_rows
        try:
            # The decompressed (or decoded) file may be no larger than an upload may be.
            dataset = load_dataset(
                path,
                max_rows=max_rows,
                max_bytes=limits.max_upload_bytes,
                option_style="api",
                **options.as_loader_kwargs(),
            )
        except TypeError as exc:  # an option the loader does not know: a bad request, not a crash
            raise InvalidRequestError(f"invalid dataset options: {exc}") from exc
        except DatasetLimitError as exc:
            if exc.limit == "rows":
                raise DatasetTooLargeError(f"the dataset has more than {max_rows} rows") from None
            if exc.limit == "cells":
                raise DatasetTooLargeError(
                    f"the file has more than {MAX_CELLS} cells (rows x columns)"
                ) from None
            raise DatasetTooLargeError(
                f"the file holds more than {limits.max_upload_bytes} bytes once decompressed "
                f"(the upload limit applies to the decompressed data too)"
            ) from None
        except DatasetError as exc:
            if any("max_rows" in p for p in exc.problems):
                raise DatasetTooLargeError(f"the dataset has more than {max_rows} rows") from exc
            raise
        self._check_rows(dataset)
        return dataset

    def _check_rows(self, dataset: Any) -> None:
        if len(dataset) > self.settings.limits.max_rows:
            raise DatasetTooLargeError(
                f"the dataset has {len(dataset)} rows, more than the limit of {self.settings.limits.max_rows}"
            )

    def _register(
        self,
        dataset_id: str,
        dataset: Any,
        *,
        source: str,
        builtin_name: str | None,
        filename: str | None,
        path: Path | None,
        options: dict[str, Any],
        name: str,
        owner_key_id: str | None,
    ) -> Dataset:
        meta = self.meta_features.compute(dataset)
        record = Dataset(
            id=dataset_id,
            name=name[:200],
            source=source,
            builtin_name=builtin_name,
            filename=filename,
            digest=dataset.digest(),
            task_kind=dataset.task_kind,
            num_labels=dataset.num_labels,
            labels=list(dataset.label_names) or None,
            n_train=len(dataset.train),
            n_dev=len(dataset.dev),
            options=options,
            meta_features=meta,
            created_at=utcnow(),
            owner_key_id=owner_key_id,
        )
        return self.store.datasets.create(record, str(path) if path else None)

    def delete(self, dataset_id: str, caller: Caller = SYSTEM) -> None:
        """Delete a dataset of ``caller``'s that no queued or running job uses, and its stored file."""
        path = self.store.datasets.delete(dataset_id, owner=caller.owner)
        if path:
            shutil.rmtree(Path(path).parent, ignore_errors=True)

    def loader_source(self, dataset: Dataset) -> tuple[str, dict[str, Any]]:
        """What a job passes to ``load_dataset``: the built-in name or stored file, and options."""
        if dataset.builtin_name:
            return dataset.builtin_name, {}
        path = self.store.datasets.path(dataset.id)
        if not path:
            raise InvalidRequestError(f"dataset {dataset.id} has no stored file")
        return path, dict(dataset.options)

    @staticmethod
    def builtins() -> list[dict[str, str]]:
        from models.data import list_builtin

        return [{"name": b.name, "description": b.description} for b in list_builtin() if b.available]
