"""Persistence behind a store: every method returns plain ``app.domain`` objects, never ORM rows."""

from __future__ import annotations

from app.db.engine import Database
from app.store.datasets import DatasetStore
from app.store.jobs import JobStore
from app.store.keys import ApiKeyStore
from app.store.meta_learners import MetaLearnerStore
from app.store.recommendations import RecommendationStore
from app.store.records import SweepRecordStore
from app.store.sweeps import SweepStore


class Store:
    """The service's persistence, one repository per resource, over one :class:`Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.datasets = DatasetStore(db)
        self.recommendations = RecommendationStore(db)
        self.jobs = JobStore(db)
        self.sweep_records = SweepRecordStore(db)
        self.sweeps = SweepStore(db)
        self.api_keys = ApiKeyStore(db)
        self.meta_learners = MetaLearnerStore(db)

    def ping(self) -> None:
        """Raise if the database cannot answer a trivial query."""
        from sqlalchemy import text

        with self.db.read() as s:
            s.execute(text("SELECT 1"))


__all__ = ["Store"]
