"""Errors raised by the KD engine. Torch-free.

Every error carries a stable ``code`` so the service can map it to an HTTP status in one table,
and a message that is safe to show to a user and says what to do.
"""

from __future__ import annotations


class AutoDistillerError(Exception):
    """Base class for every error the engine raises on purpose."""

    code = "autodistiller_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(AutoDistillerError):
    """A KD pipeline config is invalid or cannot run in the given context."""

    code = "invalid_config"


class UnknownKeyError(ConfigError):
    """A registry key is unknown."""

    code = "unknown_key"

    def __init__(self, kind: str, key: str, known: list[str]) -> None:
        super().__init__(f"unknown {kind} {key!r}; known: {', '.join(known) or '(none)'}")
        self.kind, self.key, self.known = kind, key, known


class AssetMissingError(AutoDistillerError):
    """An offline asset (model weights, dataset file) is not installed."""

    code = "asset_missing"


class DatasetError(AutoDistillerError):
    """A dataset cannot be read or fails validation. ``problems`` lists every problem found."""

    code = "invalid_dataset"

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = list(problems or [])
        full = message if not self.problems else message + ":\n  - " + "\n  - ".join(self.problems)
        super().__init__(full)


class IncompatibleModelsError(ConfigError):
    """Teacher and student cannot be distilled together with the requested losses."""

    code = "incompatible_models"


class ComponentUnavailableError(ConfigError):
    """A pipeline component needs a resource this machine lacks (e.g. an MT model)."""

    code = "component_unavailable"


class Cancelled(AutoDistillerError):
    """Training stopped on request; a checkpoint was saved, so ``resume`` continues from it."""

    code = "cancelled"


class ExportError(AutoDistillerError):
    """Exporting the student (ONNX, int8) or verifying an export against PyTorch failed."""

    code = "export_failed"
