"""Typed dependencies for the routes (``Annotated`` aliases), all in one place."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from app.domain import ApiKey
from app.errors import AuthenticationError
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


async def require_api_key(
    services: ServicesDep,
    header_key: Annotated[str | None, Security(_api_key_header)] = None,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
) -> ApiKey | None:
    """The caller's API key; every write route depends on it (None when auth is disabled).

    Raises:
        AuthenticationError: No key, or an unknown or revoked one.
    """
    if not services.settings.auth:
        return None
    token = header_key or (bearer.credentials if bearer else None)
    if not token:
        raise AuthenticationError(
            "this route needs an API key: send X-API-Key or Authorization: Bearer <key>"
        )
    # a key verified in the last seconds is answered here; only a new one costs a thread hop
    key = services.store.api_keys.recently_verified(token)
    if key is None:
        key = await run_in_threadpool(services.store.api_keys.verify, token)
    if key is None:
        raise AuthenticationError("unknown or revoked API key")
    return key


WriteAccess = Depends(require_api_key)


async def _page_limit(services: ServicesDep, limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> int:
    return min(limit, services.settings.limits.max_page_size)


Offset = Annotated[int, Query(ge=0, le=10_000_000)]
Limit = Annotated[int, Depends(_page_limit)]
