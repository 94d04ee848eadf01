"""The service's error family and the one table from error code to HTTP status.

Every error the service raises on purpose subclasses :class:`AppError` (or the engine's
:class:`models.errors.AutoDistillerError`) and carries a stable ``code``. A single exception
handler (``app.main``) turns any of them into ``{"error": {"code", "message", "details"}}`` with
the status from :data:`STATUS_BY_CODE`. Messages are safe to show to a client.
"""

from __future__ import annotations

from typing import Any

from models.errors import AutoDistillerError


class AppError(AutoDistillerError):
    """Base class of the service's errors."""

    code = "app_error"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.details = details


class InvalidRequestError(AppError):
    """The request is well-formed JSON but asks for something impossible."""

    code = "invalid_request"


class NotFoundError(AppError):
    """A resource does not exist (or was deleted)."""

    code = "not_found"

    def __init__(self, resource: str, resource_id: object) -> None:
        super().__init__(f"{resource} {resource_id!r} not found")
        self.resource, self.resource_id = resource, resource_id


class AuthenticationError(AppError):
    """No API key, or an unknown or revoked one, on a route that needs one."""

    code = "unauthorized"


class ForbiddenError(AppError):
    """An authenticated key whose scope does not allow the request (messages name the scope only)."""

    code = "forbidden"


class PathNotAllowedError(AppError):
    """A model path lies outside the configured model roots."""

    code = "path_not_allowed"


class UploadTooLargeError(AppError):
    """An upload exceeds ``limits.max_upload_bytes``."""

    code = "upload_too_large"


class DatasetTooLargeError(AppError):
    """A dataset exceeds ``limits.max_rows``."""

    code = "dataset_too_large"


class DatasetInUseError(AppError):
    """A dataset cannot be deleted while queued or running jobs use it."""

    code = "dataset_in_use"


class IdempotencyConflictError(AppError):
    """An idempotency key was reused with a different request body."""

    code = "idempotency_conflict"


class IllegalTransitionError(AppError):
    """A job state change the state machine does not allow (e.g. cancelling a finished job)."""

    code = "illegal_transition"

    def __init__(self, job_id: str, current: str, target: str) -> None:
        super().__init__(f"job {job_id} is {current}; it cannot become {target}")
        self.job_id, self.current, self.target = job_id, current, target


class ArtifactNotReadyError(AppError):
    """An artifact is requested before the job produced it."""

    code = "artifact_not_ready"


class MetaLearnerUnavailableError(AppError):
    """No meta-learner is installed and too few sweep records exist to fit one."""

    code = "meta_learner_unavailable"


class NotEnoughRecordsError(AppError):
    """A meta-learner refit was asked for with too few usable sweep records."""

    code = "not_enough_records"


class ExecutorUnavailableError(AppError):
    """The configured executor cannot be reached (e.g. the Ray cluster is down)."""

    code = "executor_unavailable"


# Job failure codes: stored on a failed job, and raised inside workers.
class JobLostError(AppError):
    """The worker running a job stopped heart-beating more often than ``max_attempts`` allows."""

    code = "worker_lost"


class TimeBudgetExceededError(AppError):
    """A job ran past its time budget and was stopped."""

    code = "time_budget_exceeded"


class RunnerFailedError(AppError):
    """A job's runner raised an error that is not one of the family's (a bug or a crash)."""

    code = "runner_failed"


class UnknownJobKindError(AppError):
    """A job names a kind no runner is registered for."""

    code = "unknown_job_kind"


# The one table from code to HTTP status. The engine's codes are included; a test checks
# that every subclass of AutoDistillerError has an entry.
STATUS_BY_CODE: dict[str, int] = {
    # engine (models.errors)
    "autodistiller_error": 500,
    "invalid_config": 422,
    "unknown_key": 422,
    "asset_missing": 424,
    "invalid_dataset": 422,
    "incompatible_models": 422,
    "component_unavailable": 422,
    "cancelled": 409,
    "export_failed": 500,
    # service
    "app_error": 500,
    "invalid_request": 422,
    "validation_error": 422,
    "bad_request": 400,
    "not_acceptable": 406,
    "unsupported_media_type": 415,
    "not_found": 404,
    "method_not_allowed": 405,
    "unauthorized": 401,
    "forbidden": 403,
    "path_not_allowed": 403,
    "upload_too_large": 413,
    "dataset_too_large": 413,
    "dataset_in_use": 409,
    "idempotency_conflict": 409,
    "illegal_transition": 409,
    "artifact_not_ready": 409,
    "meta_learner_unavailable": 503,
    "not_enough_records": 409,
    "invalid_artifact": 503,
    "executor_unavailable": 503,
    "worker_lost": 500,
    "time_budget_exceeded": 504,
    "runner_failed": 500,
    "unknown_job_kind": 422,
    "internal_error": 500,
}


def status_for(code: str) -> int:
    """The HTTP status of an error code (500 for a code missing from the table)."""
    return STATUS_BY_CODE.get(code, 500)
