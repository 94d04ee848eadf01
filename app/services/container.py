"""Wiring: the service objects built once from the settings and shared by routes and workers."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from app.db.engine import Database
from app.db.migrate import upgrade
from app.jobs.executor import BackgroundRefit, Executor, build_executor
from app.jobs.runners import RUNNERS, Runner
from app.services.artifacts import ArtifactStore
from app.services.datasets import DatasetService
from app.services.jobs import JobService
from app.services.meta_features import MetaFeatureComputer
from app.services.meta_learner import MetaLearnerService
from app.services.model_catalog import ModelCatalog
from app.services.recommend import RecommendService
from app.services.searches import SearchDriver, SearchService
from app.services.sweeps import SweepService
from app.settings import Settings
from app.store import Store
from models.registry import Registry

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    db: Database
    store: Store
    catalog: ModelCatalog
    meta_features: MetaFeatureComputer
    datasets: DatasetService
    meta_learners: MetaLearnerService
    recommend: RecommendService
    artifacts: ArtifactStore
    jobs: JobService
    sweeps: SweepService
    searches: SearchService
    executor: Executor | None = None
    search_driver: SearchDriver | None = None

    @classmethod
    def create(cls, settings: Settings) -> Services:
        """Open the database (migrating it if configured) and build every service."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.resolved_database_url)
        if settings.auto_migrate:
            upgrade(db.engine)
        store = Store(db)
        catalog = ModelCatalog(settings.resolved_model_roots)
        meta_features = MetaFeatureComputer(
            settings.meta_learner.embeddings, threads=settings.worker.train_threads or 1
        )
        datasets = DatasetService(store, settings, meta_features)
        meta_learners = MetaLearnerService(store, settings)
        artifacts = ArtifactStore(settings.artifacts_dir)
        jobs = JobService(store, settings, catalog, datasets, artifacts)
        recommend = RecommendService(store, settings, catalog, meta_learners)
        services = cls(
            settings=settings,
            db=db,
            store=store,
            catalog=catalog,
            meta_features=meta_features,
            datasets=datasets,
            meta_learners=meta_learners,
            recommend=recommend,
            artifacts=artifacts,
            jobs=jobs,
            sweeps=SweepService(store, settings, catalog, datasets, jobs),
            searches=SearchService(store, settings, catalog, jobs, recommend),
        )
        return services

    def attach_executor(self, executor: Executor) -> None:
        """Let submissions in this process wake the executor at once."""
        self.executor = executor
        self.jobs.wake = executor.wake

    def build_executor(self, runners: Registry[Runner] = RUNNERS) -> Executor:
        """The configured executor, with the automatic refit policy as its post-success hook."""
        return build_executor(
            self.settings,
            self.store,
            runners=runners,
            on_succeeded=BackgroundRefit(self.meta_learners.maybe_refit),
        )

    def start_search_driver(self) -> SearchDriver:
        """Advance running searches in this process (wherever the job executor runs)."""
        self.search_driver = SearchDriver(self.searches)
        self.search_driver.start()
        return self.search_driver

    def close(self) -> None:
        if self.search_driver is not None:
            self.search_driver.stop(timeout=10)
        if self.executor is not None:
            self.executor.stop(timeout=self.settings.worker.stop_grace_s + 15)
        self.meta_features.close()
        self.db.dispose()
