"""Group commit: rows that requests of one event loop insert into a table share a transaction.

A coroutine's row is queued and its caller suspended; the write is scheduled behind the
callbacks that are already ready, so every request the loop is serving in that turn adds its row
first, and one transaction commits them all. Each caller resumes only once its own row is
committed, as with a transaction of its own. Under load a write-per-request endpoint (``POST
/recommend``) then pays one BEGIN/COMMIT (and, on SQLite, one turn of the write lock) per batch
instead of per request; alone, a row is written at once.

The write runs on the loop's thread: on this kind of machine handing each row to a writer thread
cost more CPU than the insert itself (thread wake-ups per request), and the transaction is short.
A batch that fails is retried row by row, so a bad row (say, a foreign key that a concurrent
delete removed) fails only its own caller.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import Table, insert

from app.db.engine import Database

_Pending = list[tuple[dict[str, Any], "asyncio.Future[None]"]]


class GroupCommit:
    """Insert rows into ``table``; concurrent coroutines of one loop share a transaction."""

    def __init__(self, db: Database, table: Table) -> None:
        self.db = db
        self.table = table
        self._pending: dict[asyncio.AbstractEventLoop, _Pending] = {}

    def insert(self, values: dict[str, Any]) -> None:
        """Insert one row in a transaction of its own (for callers outside an event loop)."""
        with self.db.write_connection() as conn:
            conn.execute(insert(self.table), [values])

    async def insert_async(self, values: dict[str, Any]) -> None:
        """Insert one row; return once it is committed.

        Raises:
            Exception: What the database raised for this row.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        pending = self._pending.get(loop)
        if pending is None:  # the first row of a batch: write once the ready callbacks have run
            pending = self._pending[loop] = []
            loop.call_soon(self._flush, loop)
        pending.append((values, done))
        await done

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = self._pending.pop(loop)
        try:
            self._write(batch)
        except BaseException as exc:  # never leave a caller waiting
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            raise

    def _write(self, batch: _Pending) -> None:
        try:
            with self.db.write_connection() as conn:
                conn.execute(insert(self.table), [values for values, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][1], exc)
                return
            for values, done in batch:  # find the row(s) at fault: each alone
                try:
                    self.insert(values)
                except Exception as row_exc:
                    _settle(done, row_exc)
                else:
                    _settle(done, None)
            return
        for _, done in batch:
            _settle(done, None)


def _settle(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.cancelled():  # the request went away (client gone); its row is written all the same
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
