"""Searches, their trials and their events. Every decision a search makes is a row here, so a
driver that stops (a killed worker) is replaced by any other without repeating finished work."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, true, update

from app.db.engine import Database
from app.db.tables import SearchEventRow, SearchRow, SearchTrialRow
from app.domain import utcnow
from app.errors import AppError, IllegalTransitionError, NotFoundError

SEARCH_TERMINAL = ("succeeded", "failed", "cancelled")
TRIAL_ACTIVE = "running"
_MAX_ID = 2**31 - 1


class SearchTransitionError(IllegalTransitionError):
    """A search state change that is not allowed (e.g. cancelling a finished search): a 409."""

    def __init__(self, search_id: str, current: str, target: str) -> None:
        AppError.__init__(self, f"search {search_id} is {current}; it cannot become {target}")
        self.job_id, self.current, self.target = search_id, current, target


@dataclass(frozen=True)
class Search:
    id: str
    name: str
    status: str
    request: dict[str, Any]
    dataset_id: str
    portfolio: list[dict[str, Any]]
    cancel_requested: bool
    best_trial: int | None
    best_job_id: str | None
    stop_reason: str | None
    created_at: datetime
    finished_at: datetime | None
    owner_key_id: str | None = None

    @property
    def terminal(self) -> bool:
        return self.status in SEARCH_TERMINAL


@dataclass(frozen=True)
class SearchTrial:
    """One trial: ``rungs`` are its finished rungs (``epochs``, ``score``, ``ratio``, ``job_id``,
    ``seconds``); ``job_id`` is the job of the rung in progress."""

    search_id: str
    number: int
    status: str
    source: str
    portfolio_rank: int | None
    kd_config: dict[str, Any]
    params: dict[str, Any]
    rungs: list[dict[str, Any]]
    target_epochs: int | None
    job_id: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class SearchEvent:
    id: int
    search_id: str
    type: str
    data: dict[str, Any]
    created_at: datetime


def _search(row: SearchRow) -> Search:
    return Search(
        id=row.id,
        name=row.name,
        status=row.status,
        request=dict(row.request),
        dataset_id=row.dataset_id,
        portfolio=list(row.portfolio),
        cancel_requested=row.cancel_requested,
        best_trial=row.best_trial,
        best_job_id=row.best_job_id,
        stop_reason=row.stop_reason,
        created_at=row.created_at,
        finished_at=row.finished_at,
        owner_key_id=row.owner_key_id,
    )


def _trial(row: SearchTrialRow) -> SearchTrial:
    return SearchTrial(
        search_id=row.search_id,
        number=row.number,
        status=row.status,
        source=row.source,
        portfolio_rank=row.portfolio_rank,
        kd_config=dict(row.kd_config),
        params=dict(row.params),
        rungs=list(row.rungs),
        target_epochs=row.target_epochs,
        job_id=row.job_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class SearchStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ---- searches -----------------------------------------------------------------------------
    def create(
        self,
        name: str,
        request: dict[str, Any],
        *,
        dataset_id: str,
        portfolio: list[dict[str, Any]],
        owner_key_id: str | None = None,
    ) -> Search:
        now = utcnow()
        with self.db.write() as s:
            row = SearchRow(
                id=uuid.uuid4().hex,
                name=name,
                status="running",
                request=request,
                dataset_id=dataset_id,
                portfolio=portfolio,
                cancel_requested=False,
                created_at=now,
                owner_key_id=owner_key_id,
            )
            s.add(row)
            s.flush()
            s.add(SearchEventRow(search_id=row.id, type="status", data={"status": "running"}, created_at=now))
            return _search(row)

    def get(self, search_id: str, *, owner: str | None = None) -> Search:
        """A search; with ``owner``, only one that key created.

        Raises:
            NotFoundError: No such search (or another key's).
        """
        with self.db.read() as s:
            row = s.get(SearchRow, search_id)
            if row is None or (owner is not None and row.owner_key_id != owner):
                raise NotFoundError("search", search_id)
            return _search(row)

    def list(self, *, offset: int = 0, limit: int = 50, owner: str | None = None) -> tuple[list[Search], int]:
        mine = SearchRow.owner_key_id == owner if owner is not None else true()
        with self.db.read() as s:
            count = s.scalar(select(func.count()).select_from(SearchRow).where(mine)) or 0
            rows = s.scalars(
                select(SearchRow)
                .where(mine)
                .order_by(SearchRow.created_at.desc(), SearchRow.id)
                .offset(offset)
                .limit(limit)
            ).all()
            return [_search(r) for r in rows], count

    def running_ids(self) -> list[str]:
        with self.db.read() as s:
            return list(
                s.scalars(
                    select(SearchRow.id).where(SearchRow.status == "running").order_by(SearchRow.created_at)
                )
            )

    def claim(self, search_id: str, driver_id: str, *, lease_s: float) -> bool:
        """Take (or renew) the right to advance a running search for ``lease_s`` seconds."""
        now = utcnow()
        with self.db.write() as s:
            done = s.execute(
                update(SearchRow)
                .where(
                    SearchRow.id == search_id,
                    SearchRow.status == "running",
                    or_(
                        SearchRow.driver_id.is_(None),
                        SearchRow.driver_id == driver_id,
                        SearchRow.driver_lease_until < now,
                    ),
                )
                .values(driver_id=driver_id, driver_lease_until=now + timedelta(seconds=lease_s))
            )
            return done.rowcount == 1

    def release(self, search_id: str, driver_id: str) -> None:
        with self.db.write() as s:
            s.execute(
                update(SearchRow)
                .where(SearchRow.id == search_id, SearchRow.driver_id == driver_id)
                .values(driver_id=None, driver_lease_until=None)
            )

    def request_cancel(self, search_id: str) -> Search:
        """Flag a running search for cancellation (the driver cancels its jobs and ends it).

        Raises:
            IllegalTransitionError: The search has finished already.
        """
        with self.db.write() as s:
            row = s.get(SearchRow, search_id)
            if row is None:
                raise NotFoundError("search", search_id)
            if row.status in SEARCH_TERMINAL:
                raise SearchTransitionError(search_id, row.status, "cancelled")
            if not row.cancel_requested:
                row.cancel_requested = True
                s.add(
                    SearchEventRow(
                        search_id=search_id,
                        type="log",
                        data={"message": "cancel requested"},
                        created_at=utcnow(),
                    )
                )
            s.flush()
            return _search(row)

    def finish(
        self,
        search_id: str,
        status: str,
        *,
        best_trial: int | None = None,
        best_job_id: str | None = None,
        stop_reason: str | None = None,
    ) -> Search:
        """End a running search, with its status event in the same transaction.

        Raises:
            IllegalTransitionError: It had ended already.
        """
        now = utcnow()
        with self.db.write() as s:
            done = s.execute(
                update(SearchRow)
                .where(SearchRow.id == search_id, SearchRow.status == "running")
                .values(
                    status=status,
                    best_trial=best_trial,
                    best_job_id=best_job_id,
                    stop_reason=stop_reason,
                    finished_at=now,
                    driver_id=None,
                    driver_lease_until=None,
                )
            )
            row = s.get(SearchRow, search_id)
            if row is None:
                raise NotFoundError("search", search_id)
            if done.rowcount != 1:
                raise SearchTransitionError(search_id, row.status, status)
            data = {
                "status": status,
                "best_trial": best_trial,
                "best_job_id": best_job_id,
                "reason": stop_reason,
            }
            s.add(SearchEventRow(search_id=search_id, type="status", data=data, created_at=now))
            s.flush()
            s.refresh(row)
            return _search(row)

    # ---- trials -------------------------------------------------------------------------------
    def add_trial(
        self,
        search_id: str,
        number: int,
        *,
        source: str,
        portfolio_rank: int | None,
        kd_config: dict[str, Any],
        params: dict[str, Any],
        target_epochs: int,
    ) -> SearchTrial:
        """A new trial (status ``running``, no job yet). Numbers are unique per search, so two
        drivers racing to add the same trial cannot both succeed (IntegrityError)."""
        now = utcnow()
        with self.db.write() as s:
            row = SearchTrialRow(
                search_id=search_id,
                number=number,
                status=TRIAL_ACTIVE,
                source=source,
                portfolio_rank=portfolio_rank,
                kd_config=kd_config,
                params=params,
                rungs=[],
                target_epochs=target_epochs,
                job_id=None,
                created_at=now,
                updated_at=now,
            )
            s.add(row)
            s.flush()
            return _trial(row)

    def update_trial(
        self,
        search_id: str,
        number: int,
        *,
        status: str,
        rungs: list[dict[str, Any]],
        target_epochs: int | None,
        job_id: str | None,
        event: tuple[str, dict[str, Any]] | None = None,
    ) -> None:
        """Store a trial's state, and the event that says what happened, in one transaction."""
        now = utcnow()
        with self.db.write() as s:
            s.execute(
                update(SearchTrialRow)
                .where(SearchTrialRow.search_id == search_id, SearchTrialRow.number == number)
                .values(
                    status=status, rungs=rungs, target_epochs=target_epochs, job_id=job_id, updated_at=now
                )
            )
            if event is not None:
                s.add(SearchEventRow(search_id=search_id, type=event[0], data=event[1], created_at=now))

    def set_trial_job(self, search_id: str, number: int, job_id: str) -> None:
        with self.db.write() as s:
            s.execute(
                update(SearchTrialRow)
                .where(SearchTrialRow.search_id == search_id, SearchTrialRow.number == number)
                .values(job_id=job_id, updated_at=utcnow())
            )

    def trials(self, search_id: str) -> list[SearchTrial]:
        with self.db.read() as s:
            rows = s.scalars(
                select(SearchTrialRow)
                .where(SearchTrialRow.search_id == search_id)
                .order_by(SearchTrialRow.number)
            ).all()
            return [_trial(r) for r in rows]

    # ---- events -------------------------------------------------------------------------------
    def add_event(self, search_id: str, type_: str, data: dict[str, Any]) -> None:
        with self.db.write() as s:
            s.add(SearchEventRow(search_id=search_id, type=type_, data=data, created_at=utcnow()))

    def events(self, search_id: str, *, after_id: int = 0, limit: int = 500) -> list[SearchEvent]:
        if after_id >= _MAX_ID:  # beyond the column's range (Postgres integer): nothing comes after it
            return []
        with self.db.read() as s:
            rows = s.scalars(
                select(SearchEventRow)
                .where(SearchEventRow.search_id == search_id, SearchEventRow.id > after_id)
                .order_by(SearchEventRow.id)
                .limit(limit)
            ).all()
            return [SearchEvent(r.id, r.search_id, r.type, dict(r.data), r.created_at) for r in rows]
