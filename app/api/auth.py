"""Authentication before anything else: a pure ASGI middleware that checks the API key.

FastAPI reads and parses a request body before it runs a route's dependencies, so a key checked
in a dependency came too late: an anonymous caller with a malformed body got a 422 (or a 413 or
415) that told it about the route. Here the key is checked from the headers alone, before the
body is read: with auth on, a request to a protected route without a valid key is a 401, and a
write method with a ``read`` key is a 403, whatever its body. The key found is left in the ASGI
scope for :mod:`app.deps`, which checks the scope each route needs and confines the caller to its
own objects.

Public without a key: ``/health``, ``/metrics`` (aggregate counts, for probes and scrapers) and
the API documentation (``/docs``, ``/redoc``, ``/openapi.json`` and their bundled assets). With
``public_reads``, GET and HEAD requests need no key either.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool

from app.api.handlers import error_response
from app.domain import ApiKey, KeyScope

PUBLIC_PATHS = frozenset({"/health", "/metrics", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
PUBLIC_PREFIXES = ("/static-offline-docs/",)
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SCOPE_KEY = "autodistiller.api_key"  # where the verified key travels in the ASGI scope

NO_KEY_MESSAGE = "this route needs an API key: send X-API-Key or Authorization: Bearer <key>"
BAD_KEY_MESSAGE = "unknown or revoked API key"


def scope_message(has: KeyScope, needed: KeyScope) -> str:
    """The 403 message: names the scopes, nothing about the server."""
    return f"this API key has the {has.value} scope; this request needs a key with the {needed.value} scope"


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def authenticated_key(scope: dict[str, Any]) -> ApiKey | None:
    """The key :class:`AuthMiddleware` verified for this request (None: no key was needed)."""
    return scope.get(SCOPE_KEY)


def _token(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The key from ``X-API-Key``, else from ``Authorization: Bearer``."""
    bearer = None
    for name, value in headers:
        if name == b"x-api-key" and value:
            return value.decode("latin-1")
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                bearer = credentials.strip()
    return bearer


class AuthMiddleware:
    """Refuse requests without a valid key (401) or with too narrow a scope for the method (403)
    before the app reads their body; ``services`` gives the app's services (None before start-up)."""

    def __init__(self, app: Any, services: Callable[[], Any]) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        services = self.services() if scope["type"] == "http" else None
        if services is None or not services.settings.auth or is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        token = _token(scope.get("headers") or [])
        if token is None:
            if method in READ_METHODS and services.settings.public_reads:
                await self.app(scope, receive, send)
                return
            await error_response("unauthorized", NO_KEY_MESSAGE)(scope, receive, send)
            return
        keys = services.store.api_keys
        # a key verified in the last seconds is answered here; only a new one costs a thread hop
        key = keys.recently_verified(token) or await run_in_threadpool(keys.verify, token)
        if key is None:
            await error_response("unauthorized", BAD_KEY_MESSAGE)(scope, receive, send)
            return
        if method not in READ_METHODS and not key.scope.allows(KeyScope.WRITE):
            message = scope_message(key.scope, KeyScope.WRITE)
            await error_response("forbidden", message)(scope, receive, send)
            return
        scope[SCOPE_KEY] = key
        await self.app(scope, receive, send)
