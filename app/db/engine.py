"""Engine creation: SQLite in WAL mode (the embedded default) or Postgres via a URL."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
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
        # in sleeps of up to 100 ms (its busy handler): writers take turns before they begin.
        self._turn: _WriteTurn | None = None
        if self.dialect == "sqlite":
            database = make_url(url).database
            file = database if database and database != ":memory:" else None
            self._turn = _WriteTurn.of(file) if file else _WriteTurn(None)

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction committed on success and rolled back on error."""
        with self._my_turn(), self._write() as session, session.begin():
            yield session

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """:meth:`write` for Core statements: a connection in a transaction, without an ORM
        session (whose bookkeeping costs more than a plain INSERT)."""
        with self._my_turn(), self._write_engine.begin() as conn:
            yield conn

    def _my_turn(self) -> AbstractContextManager[None]:
        return self._turn.hold() if self._turn is not None else nullcontext()

    def dispose(self) -> None:
        self.engine.dispose()
        if self._turn is not None:
            self._turn.release()
            self._turn = None


class _WriteTurn:
    """Whose turn it is to write one SQLite file: a re-entrant lock for the threads of this
    process, and an advisory lock on ``<file>.write-lock`` for other processes (API workers, the
    executor, CLI commands), which hands over as soon as it is released.

    One per file and process (:meth:`of`), shared by every :class:`Database` on that file, so two
    of them in one thread nest instead of waiting for each other; a forked child gets its own.
    """

    _registry: dict[tuple[int, str], _WriteTurn] = {}
    _registry_lock = threading.Lock()

    def __init__(self, file: str | None) -> None:
        self.lock = threading.RLock()
        self.depth = 0
        self.users = 0
        self.key: tuple[int, str] | None = None
        self.fd: int | None = None
        if file is not None and fcntl is not None:
            self.fd = os.open(f"{file}.write-lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)

    @classmethod
    def of(cls, file: str) -> _WriteTurn:
        """The turn of ``file`` in this process; :meth:`release` it when done."""
        key = (os.getpid(), str(Path(file).resolve()))
        with cls._registry_lock:
            turn = cls._registry.get(key)
            if turn is None:
                turn = cls._registry[key] = cls(key[1])
                turn.key = key
            turn.users += 1
            return turn

    def release(self) -> None:
        """One user fewer; the last one closes the lock file."""
        with self._registry_lock:
            self.users -= 1
            if self.users > 0 or self.key is None:
                return
            del self._registry[self.key]
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    @contextmanager
    def hold(self) -> Iterator[None]:
        with self.lock:
            if self.depth == 0 and self.fd is not None:
                fcntl.flock(self.fd, fcntl.LOCK_EX)
            self.depth += 1
            try:
                yield
            finally:
                self.depth -= 1
                if self.depth == 0 and self.fd is not None:
                    fcntl.flock(self.fd, fcntl.LOCK_UN)
