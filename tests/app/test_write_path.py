"""The write path under load: group commit, writers queued within and across processes, JSON text."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import make_url

from app.db.engine import Database
from app.db.group_commit import GroupCommit
from app.db.migrate import upgrade
from app.db.tables import RecommendationRow
from app.domain import utcnow
from app.store import Store


def _values(i: int, dataset_id: str | None = None) -> dict[str, Any]:
    return {
        "id": f"{i:032x}",
        "dataset_id": dataset_id,
        "meta_features": {"n_train": float(i)},
        "teacher": {"name": "t"},
        "k": 1,
        "meta_learner_version": 1,
        "items": [{"rank": 1}],
        "created_at": utcnow(),
    }


@pytest.fixture
def db(database_url: str) -> Any:
    database = Database(database_url)
    upgrade(database.engine)
    try:
        yield database
    finally:
        database.dispose()


def _commits(db: Database) -> list[int]:
    """A counter of commits on ``db``'s engine."""
    seen = [0]

    @event.listens_for(db.engine, "commit")
    def _count(_conn: Any) -> None:
        seen[0] += 1

    return seen


def _ids(db: Database) -> set[str]:
    with db.read() as s:
        return set(s.scalars(select(RecommendationRow.id)))


def test_concurrent_rows_share_one_transaction_and_each_caller_waits_for_its_commit(db: Database) -> None:
    group = GroupCommit(db, RecommendationRow.__table__)
    commits = _commits(db)

    async def main() -> None:
        # 20 requests ready in the same turn of the loop: one batch
        await asyncio.gather(*(group.insert_async(_values(i)) for i in range(20)))
        assert _ids(db) == {f"{i:032x}" for i in range(20)}  # committed when the callers resume
        assert commits[0] == 1
        await group.insert_async(_values(99))  # alone: written at once, its own transaction
        assert commits[0] == 2

    asyncio.run(main())


def test_a_bad_row_fails_only_its_own_caller(db: Database) -> None:
    group = GroupCommit(db, RecommendationRow.__table__)

    async def main() -> list[Any]:
        rows = [_values(1), _values(2, dataset_id="no-such-dataset"), _values(3), _values(1)]
        return await asyncio.gather(*(group.insert_async(v) for v in rows), return_exceptions=True)

    results = asyncio.run(main())
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], Exception)  # foreign key
    assert isinstance(results[3], Exception)  # duplicate id of row 1
    assert _ids(db) == {f"{1:032x}", f"{3:032x}"}


def test_a_cancelled_caller_does_not_break_the_batch(db: Database) -> None:
    group = GroupCommit(db, RecommendationRow.__table__)

    async def main() -> None:
        gone = asyncio.ensure_future(group.insert_async(_values(1)))
        stays = asyncio.ensure_future(group.insert_async(_values(2)))
        await asyncio.sleep(0)  # both rows queued, the write scheduled
        gone.cancel()
        await stays

    asyncio.run(main())
    assert _ids(db) == {f"{1:032x}", f"{2:032x}"}  # a cancelled request's row is still written


def test_recommendation_store_saves_and_reads_back(db: Database) -> None:
    store = Store(db)
    rec = store.recommendations.new(
        dataset_id=None,
        meta_features={"n_train": 10.0, "entropy": None},
        teacher={"name": "t"},
        k=1,
        meta_learner_version=None,
        items=[{"rank": 1, "explanation": {"nearest_datasets": [["a", 0.5]]}}],
    )
    asyncio.run(store.recommendations.save_async(rec))
    again = store.recommendations.get(rec.id)
    assert again.items == rec.items and again.created_at == rec.created_at
    assert again.meta_features == rec.meta_features


def test_json_columns_keep_what_the_json_module_wrote(sqlite_url: str) -> None:
    """The compiled JSON serializer writes text the json module reads back to the same values
    (NaN included, which SQLite stores and Postgres refuses)."""
    import json

    from app.db.engine import _json_text

    value = {"a": [1, 2.5, "x", None, True], "b": {"c": 1e-7, "d": math.nan}, "e": (1, 2)}
    back = json.loads(_json_text(value))
    assert math.isnan(back["b"].pop("d")) and back == {
        "a": [1, 2.5, "x", None, True],
        "b": {"c": 1e-7},
        "e": [1, 2],
    }


def test_sqlite_writers_of_one_process_queue_and_nesting_does_not_deadlock(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    upgrade(db.engine)
    order: list[str] = []
    holding = threading.Event()

    def first() -> None:
        with db.write():
            order.append("first in")
            holding.set()
            time.sleep(0.3)
            order.append("first out")

    t = threading.Thread(target=first)
    t.start()
    holding.wait()
    with db.write_connection():
        order.append("second in")
    t.join()
    assert order == ["first in", "first out", "second in"]
    other = Database(sqlite_url)  # another Database on the same file shares the turn
    nested = threading.Event()

    def nest() -> None:
        with db.write(), db.write_connection(), other.write():  # re-entrant, not waiting on itself
            nested.set()

    t = threading.Thread(target=nest, daemon=True)
    t.start()
    t.join(timeout=30)
    assert nested.is_set()
    other.dispose()
    db.dispose()


def test_sqlite_writers_of_two_processes_queue_on_the_lock_file(sqlite_url: str, tmp_path: Path) -> None:
    """Another process holding the lock file (no SQLite transaction at all) makes a writer wait:
    writers across processes take turns there, not in SQLite's sleep-and-retry busy handler."""
    db = Database(sqlite_url)
    upgrade(db.engine)
    lock_file = f"{make_url(sqlite_url).database}.write-lock"
    marker = tmp_path / "holding"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import fcntl, os, time
                from pathlib import Path
                fd = os.open({lock_file!r}, os.O_RDWR | os.O_CREAT)
                fcntl.flock(fd, fcntl.LOCK_EX)
                Path({str(marker)!r}).touch()
                time.sleep(1.0)
                """
            ),
        ]
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert holder.poll() is None and time.monotonic() < deadline, "the holder did not start"
            time.sleep(0.02)
        start = time.monotonic()
        with db.write_connection():
            waited = time.monotonic() - start
        assert waited > 0.5
    finally:
        assert holder.wait(timeout=60) == 0
        db.dispose()


def test_the_lock_file_stays_open_while_a_database_on_it_is_in_use(sqlite_url: str) -> None:
    from app.db.engine import _WriteTurn

    a, b = Database(sqlite_url), Database(sqlite_url)
    assert a._turn is b._turn and a._turn.fd is not None
    turn = a._turn
    a.dispose()
    with b.write_connection():  # still usable
        pass
    b.dispose()
    assert turn.fd is None and turn.key not in _WriteTurn._registry
