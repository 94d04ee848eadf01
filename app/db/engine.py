"""Engine creation: SQLite in WAL mode (the embedded default) or Postgres via a URL."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic_core import to_json
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

try:
    import fcntl
except ImportError:  # not POSIX: SQLite's own busy waiting is all there is
    fcntl = None  # type: ignore[assignment]


def _prepare_sqlite(engine: Engine) -> None:
    """WAL, a busy timeout, foreign keys, and explicit BEGIN so writers can take the lock up front.

    pysqlite's own transaction handling starts a deferred transaction lazily; a transaction that
    reads and then writes can then fail with SQLITE_BUSY when another connection wrote meanwhile.
    Write sessions therefore ``BEGIN IMMEDIATE`` (see :class:`Database`), read sessions ``BEGIN``.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str) -> Engine:
    """Create an engine for ``url``; for a SQLite file, create its folder and enable WAL."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # as many connections as the thread pool has threads: a request must not queue for one
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=20,
            max_overflow=20,
            json_serializer=_json_text,
        )
        _prepare_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=30, json_serializer=_json_text)


def _json_text(value: Any) -> str:
    """JSON columns' serializer: pydantic-core's (compiled) instead of the json module's; the
    same text for what these columns hold (NaN included), several times faster for the
    recommendations' items, written once per /recommend."""
    return to_json(value, inf_nan_mode="constants").decode()


class Database:
    """An engine plus session factories for reads and writes."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name
        write_engine = (
            self.engine.execution_options(sqlite_begin="IMMEDIATE")
            if self.dialect == "sqlite"
            else self.engine
        )
        self._write_engine = write_engine
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(write_engine, expire_on_commit=False)
        # SQLite has one writer at a time, and a connection that finds the lock taken polls for it
        # in sleeps of up to 100 ms (its busy handler). Writers therefore queue before they begin:
        # those of this process on a lock, those of other processes (the API workers, the
        # executor) on an advisory lock of a file beside the database, which hands over at once.
        self._write_lock = threading.RLock() if self.dialect == "sqlite" else None
        self._write_depth = 0
        self._lock_file: int | None = None
        database = make_url(url).database
        if self.dialect == "sqlite" and fcntl is not None and database and database != ":memory:":
            self._lock_file = os.open(f"{database}.write-lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction committed on success and rolled back on error."""
        if self._write_lock is None:
            with self._write() as session, session.begin():
                yield session
            return
        with self._write_lock, self._across_processes(), self._write() as session, session.begin():
            yield session

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """:meth:`write` for Core statements: a connection in a transaction, without an ORM
        session (whose bookkeeping costs more than a plain INSERT)."""
        if self._write_lock is None:
            with self._write_engine.begin() as conn:
                yield conn
            return
        with self._write_lock, self._across_processes(), self._write_engine.begin() as conn:
            yield conn

    @contextmanager
    def _across_processes(self) -> Iterator[None]:
        """Hold the file lock (taken once per thread and nesting: the caller holds the RLock)."""
        if self._lock_file is None or self._write_depth:
            self._write_depth += 1
            try:
                yield
            finally:
                self._write_depth -= 1
            return
        fcntl.flock(self._lock_file, fcntl.LOCK_EX)
        self._write_depth = 1
        try:
            yield
        finally:
            self._write_depth = 0
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)

    def dispose(self) -> None:
        self.engine.dispose()
        if self._lock_file is not None:
            os.close(self._lock_file)
            self._lock_file = None
