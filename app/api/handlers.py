"""The single exception handler (error family -> JSON with a code, status from one table) and the
request-body limit."""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from app.api.redact import PathRedactionMiddleware, PathRedactor
from app.errors import UploadTooLargeError, status_for
from models.errors import AutoDistillerError

log = logging.getLogger(__name__)

# Starlette's own HTTP errors (unknown route, bad method, unparsable body) by status.
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "upload_too_large",
    415: "unsupported_media_type",
}


# Messages can echo client input (an id, a key, a path): bounded, so a 1 MB value is not sent back.
MAX_MESSAGE = 1000
MAX_DETAIL_MESSAGE = 300
MAX_LOC_PART = 80
MAX_DETAILS = 50


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def _loc_part(part: Any) -> Any:
    return part if isinstance(part, int) else truncate(str(part), MAX_LOC_PART)


def _validation_details(errors: list[Any]) -> list[dict[str, Any]]:
    # loc/msg/type only: "input" may echo large or sensitive values, "ctx" may hold exceptions
    details = [
        {
            "loc": [_loc_part(p) for p in e.get("loc", ())],
            "msg": truncate(str(e.get("msg", "")), MAX_DETAIL_MESSAGE),
            "type": str(e.get("type", "")),
        }
        for e in errors[:MAX_DETAILS]
    ]
    if len(errors) > MAX_DETAILS:
        details.append({"loc": [], "msg": f"{len(errors) - MAX_DETAILS} more errors", "type": "truncated"})
    return details


def classify(exc: Exception) -> tuple[str, str, Any]:
    """``(code, message, details)`` for any exception; unknown ones become ``internal_error``."""
    if isinstance(exc, AutoDistillerError):
        details = getattr(exc, "details", None) or getattr(exc, "problems", None) or None
        return exc.code, exc.message, details
    if isinstance(exc, RequestValidationError):
        return "validation_error", "the request is not valid", _validation_details(list(exc.errors()))
    if isinstance(exc, ValidationError):
        return "invalid_request", "the request is not valid", _validation_details(exc.errors())
    if isinstance(exc, StarletteHTTPException):
        return _HTTP_CODES.get(exc.status_code, "bad_request"), str(exc.detail), None
    if isinstance(exc, DataError) and "NUL" in str(exc.orig):
        # Postgres cannot store NUL in text, so an id, name or filter holding one matches nothing
        # and can be stored nowhere; the transaction was rolled back before anything was written.
        return (
            "invalid_request",
            "text values (ids, names, filters) cannot contain NUL (0x00) characters",
            None,
        )
    return "internal_error", "internal server error", None


def error_response(
    code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": truncate(message, MAX_MESSAGE), "details": details}}
    json.dumps(body)  # details are plain data by construction; fail loudly here if not
    if code == "unauthorized":
        headers = {**(headers or {}), "WWW-Authenticate": 'Bearer, ApiKey header="X-API-Key"'}
    return JSONResponse(body, status_code=status_for(code), headers=headers)


async def handle_error(request: Request, exc: Exception) -> JSONResponse:
    code, message, details = classify(exc)
    if code == "internal_error":
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    headers = getattr(exc, "headers", None) if isinstance(exc, StarletteHTTPException) else None
    return error_response(code, message, details, headers)


def install_error_handler(app: FastAPI) -> None:
    """Register the one handler for every exception type that reaches the app, and the
    middleware that keeps server paths out of every text response (``app.api.redact``)."""
    for exc_type in (
        AutoDistillerError,
        RequestValidationError,
        ValidationError,
        StarletteHTTPException,
        DataError,  # registered by type, so it is answered here and not re-raised as a 500
        Exception,
    ):
        app.add_exception_handler(exc_type, handle_error)
    app.add_middleware(PathRedactionMiddleware, redactor=lambda: redactor_of(app))


def redactor_of(app: FastAPI) -> PathRedactor | None:
    """The app's :class:`PathRedactor`, made once its services (and settings) exist."""
    services = getattr(app.state, "services", None)
    if services is None:
        return None
    cached = getattr(app.state, "path_redactor", None)
    if cached is None or cached[0] is not services:
        cached = (services, PathRedactor.for_settings(services.settings))
        app.state.path_redactor = cached
    return cached[1]


class BodyLimitMiddleware:
    """Refuse request bodies over ``limit`` bytes (by Content-Length, or counted when chunked)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await self._refuse(scope, receive, send)
            return
        received = 0
        exceeded = False

        async def limited_receive() -> dict[str, Any]:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    exceeded = True
                    raise UploadTooLargeError(f"request body exceeds {self.limit} bytes")
            return message

        async def guarded_send(message: dict[str, Any]) -> None:
            if not exceeded:  # once exceeded, the app's (400) answer is replaced by ours
                await send(message)

        with contextlib.suppress(UploadTooLargeError):
            await self.app(scope, limited_receive, guarded_send)
        if exceeded:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        response = error_response("upload_too_large", f"request body exceeds {self.limit} bytes")
        await response(scope, receive, send)
