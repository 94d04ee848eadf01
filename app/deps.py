"""Typed dependencies for the routes (``Annotated`` aliases), all in one place."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Query, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from app.api.auth import NO_KEY_MESSAGE, authenticated_key, scope_message
from app.domain import SYSTEM, Caller, KeyScope
from app.errors import AuthenticationError, ForbiddenError
from app.services.container import Services
from app.settings import Settings


# Trivial dependencies are ``async def``: a plain ``def`` would cost a thread-pool hop per request.
async def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_settings(services: ServicesDep) -> Settings:
    return services.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]

_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="an API key from `autodistiller keys create`"
)
_bearer = HTTPBearer(auto_error=False, description="the same API key as a bearer token")


def _access(needed: KeyScope) -> Callable[..., Awaitable[Caller]]:
    """A dependency that answers who calls a route needing ``needed``.

    The key itself was checked by :class:`app.api.auth.AuthMiddleware` before the request body
    was read (a missing or bad key is a 401 there, a read key on a write method a 403); this
    checks the scope the route needs and turns the key into a :class:`Caller`. The two security
    parameters are never read here: they document the key schemes in the OpenAPI schema.
    """

    async def access(
        request: Request,
        services: ServicesDep,
        header_key: Annotated[str | None, Security(_api_key_header)] = None,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
    ) -> Caller:
        settings = services.settings
        if not settings.auth:
            return SYSTEM  # loopback only: everything is shared
        key = authenticated_key(request.scope)
        if needed == KeyScope.READ and settings.public_reads:
            # reads are open to anyone, so confining a keyed read would hide nothing
            return Caller(key_id=key.id if key else None, sees_all=True)
        if key is None:  # the middleware lets no such request through; refuse if it ever does
            raise AuthenticationError(NO_KEY_MESSAGE)
        if not key.scope.allows(needed):
            raise ForbiddenError(scope_message(key.scope, needed))
        return key.caller()

    return access


# one function per scope: FastAPI runs a dependency used twice by a route once
_read, _write, _admin = (_access(s) for s in (KeyScope.READ, KeyScope.WRITE, KeyScope.ADMIN))

ReadCaller = Annotated[Caller, Depends(_read)]
"""The caller of a read route (any valid key; none with ``public_reads``)."""
WriteCaller = Annotated[Caller, Depends(_write)]
"""The caller of a route that creates or changes objects (a write or admin key)."""
AdminCaller = Annotated[Caller, Depends(_admin)]
"""The caller of a route that changes what every key shares (an admin key)."""

ReadAccess = Depends(_read)
WriteAccess = Depends(_write)
AdminAccess = Depends(_admin)


async def _page_limit(services: ServicesDep, limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> int:
    return min(limit, services.settings.limits.max_page_size)


Offset = Annotated[int, Query(ge=0, le=10_000_000)]
Limit = Annotated[int, Depends(_page_limit)]
