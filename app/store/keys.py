"""API keys, stored as SHA-256 hashes (the keys are 256-bit random, so a slow hash adds nothing)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
import uuid
from datetime import timedelta

from sqlalchemy import select, update

from app.db.engine import Database
from app.db.tables import ApiKeyRow
from app.domain import ApiKey, KeyScope, utcnow
from app.errors import NotFoundError

KEY_PREFIX = "adk"
_LAST_USED_RESOLUTION = timedelta(minutes=1)  # avoid a write per request
# A verified key is trusted for this long without a database read (a hot write route would
# otherwise pay a query per request). Revocation in this process takes effect at once; in another
# process (another API worker) within this many seconds.
VERIFY_CACHE_S = 5.0


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _to_domain(row: ApiKeyRow) -> ApiKey:
    return ApiKey(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
        scope=KeyScope(row.scope),
    )


class ApiKeyStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._verified: dict[str, tuple[ApiKey, float]] = {}  # token hash -> (key, trusted until)
        self._lock = threading.Lock()

    def create(self, name: str, scope: KeyScope | str = KeyScope.WRITE) -> tuple[ApiKey, str]:
        """Create a key; the secret token is returned once and never stored.

        Args:
            name: Who or what uses the key.
            scope: ``read``, ``write`` (the default) or ``admin`` (see :class:`KeyScope`).

        Returns:
            ``(key, token)`` where ``token`` looks like ``adk_<prefix>_<secret>``.
        """
        scope = KeyScope(scope)  # an unknown scope is a ValueError before anything is stored
        prefix = secrets.token_hex(6)
        token = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
        with self.db.write() as s:
            row = ApiKeyRow(
                id=uuid.uuid4().hex,
                name=name,
                prefix=prefix,
                key_hash=_hash(token),
                scope=scope.value,
                created_at=utcnow(),
            )
            s.add(row)
            s.flush()
            return _to_domain(row), token

    def recently_verified(self, token: str) -> ApiKey | None:
        """The key ``token`` belongs to if it was verified in the last ``VERIFY_CACHE_S`` seconds,
        else None (then :meth:`verify` decides); no database access."""
        return self._cached(_hash(token))

    def _cached(self, digest: str) -> ApiKey | None:
        with self._lock:
            hit = self._verified.get(digest)
        if hit is not None and time.monotonic() < hit[1]:
            return hit[0]
        return None

    def verify(self, token: str) -> ApiKey | None:
        """The live key ``token`` belongs to, or None (unknown, malformed or revoked)."""
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != KEY_PREFIX:
            return None
        digest = _hash(token)
        if (hit := self._cached(digest)) is not None:
            return hit
        with self.db.read() as s:
            row = s.scalar(select(ApiKeyRow).where(ApiKeyRow.prefix == parts[1]))
            if row is None or row.revoked_at is not None or not hmac.compare_digest(row.key_hash, digest):
                return None
            key = _to_domain(row)
        with self._lock:
            if len(self._verified) > 1000:  # many keys in turn: start over rather than grow
                self._verified.clear()
            self._verified[digest] = (key, time.monotonic() + VERIFY_CACHE_S)
        now = utcnow()
        if key.last_used_at is None or now - key.last_used_at > _LAST_USED_RESOLUTION:
            with self.db.write() as s:
                s.execute(update(ApiKeyRow).where(ApiKeyRow.id == key.id).values(last_used_at=now))
        return key

    def list(self) -> list[ApiKey]:
        with self.db.read() as s:
            return [_to_domain(r) for r in s.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at))]

    def revoke(self, key_id: str) -> ApiKey:
        with self.db.write() as s:
            row = s.get(ApiKeyRow, key_id)
            if row is None:
                raise NotFoundError("api key", key_id)
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            s.flush()
            key = _to_domain(row)
        with self._lock:
            self._verified = {d: v for d, v in self._verified.items() if v[0].id != key_id}
        return key
