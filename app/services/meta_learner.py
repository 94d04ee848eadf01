"""Which meta-learner answers /recommend, refits from the sweep records, and the refit policy.

Sources, in order of precedence:

1. The active version in the ``meta_learner_versions`` table (a refit, or a registered artifact).
2. At start-up, when no version is registered: ``settings.meta_learner.artifact``, else the
   shipped artifact ``recommender/artifacts/meta_learner.skops`` if the package has one. It is
   registered as version 1. A ``sweep_records.parquet`` shipped beside it (the artifact's training
   records) is imported once into the ``sweep_records`` table as ``source="imported"``, so later
   refits learn from the released history plus this service's own runs.
3. With neither, ``/recommend`` fits one from the records in the database if there are at least
   ``min_records``; otherwise it answers 503 with code ``meta_learner_unavailable``.

Automatic refit policy: after a job appends its sweep record, the worker refits when at least
``auto_refit_every`` records were added since the active version was fitted (0 disables it).
Refits are also available on demand (``POST /meta-learner/refit``).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from app.domain import MetaLearnerVersion
from app.errors import MetaLearnerUnavailableError, NotEnoughRecordsError
from app.settings import Settings
from app.store import Store

log = logging.getLogger(__name__)

ACTIVE_TTL_S = 1.0  # how stale this process's idea of the active version may be
SHIPPED_DIR = Path(__file__).resolve().parents[2] / "recommender" / "artifacts"
SHIPPED_ARTIFACT = SHIPPED_DIR / "meta_learner.skops"
SHIPPED_RECORDS = SHIPPED_DIR / "sweep_records.parquet"


class MetaLearnerService:
    """Loads, caches (per version) and refits the meta-learner.

    Args:
        store: The service's store.
        settings: Service settings (``meta_learner`` and ``meta_learners_dir``).
        shipped_artifact: The shipped artifact path (a parameter so tests can point elsewhere).
    """

    def __init__(
        self, store: Store, settings: Settings, shipped_artifact: Path | None = SHIPPED_ARTIFACT
    ) -> None:
        self.store = store
        self.settings = settings
        self.shipped_artifact = shipped_artifact
        self._lock = threading.Lock()
        self._refit_lock = threading.Lock()
        self._loaded: tuple[MetaLearnerVersion, Any] | None = None
        self._checked_at = float("-inf")
        self._threads_limited = False

    def _limit_threads(self) -> None:
        """Cap OpenMP/BLAS threads once the libraries are loaded.

        scikit-learn's tree ensembles spin OpenMP threads per call; with concurrent requests on a
        small machine that oversubscription made a 0.1 s fit take 20 s. threadpoolctl only reaches
        libraries already loaded, hence the import first.
        """
        if self._threads_limited:
            return
        import sklearn.ensemble  # noqa: F401  (loads the OpenMP runtime)
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=self.settings.compute_threads)
        self._threads_limited = True

    # ---- start-up -----------------------------------------------------------------------------
    def bootstrap(self) -> MetaLearnerVersion | None:
        """Register the configured or shipped artifact when the database has no version yet."""
        active = self.store.meta_learners.active()
        if active is not None:
            return active
        explicit = self.settings.meta_learner.artifact
        artifact = explicit or (self.shipped_artifact if self.settings.meta_learner.use_shipped else None)
        if artifact is None or not Path(artifact).is_file():
            if explicit is not None:
                raise MetaLearnerUnavailableError(
                    f"the configured meta-learner artifact {explicit} does not exist"
                )
            return None
        from recommender.persistence import read_sidecar

        sidecar = read_sidecar(artifact)
        source = "artifact" if explicit else "shipped"
        records_file = Path(artifact).parent / "sweep_records.parquet"
        if records_file.is_file() and self.store.sweep_records.count(source="imported") == 0:
            self._import_records(records_file)
        version = self.store.meta_learners.add(
            source=source,
            path=str(Path(artifact).resolve()),
            n_records=self.store.sweep_records.count(),
            records_digest=sidecar.get("records_digest"),
            evaluation=_summary(sidecar.get("evaluation")),
        )
        log.info("registered the %s meta-learner %s as version %d", source, artifact, version.version)
        return version

    def _import_records(self, path: Path) -> None:
        from recommender import read_records

        records = [r.to_dict() for r in read_records(path)]
        self.store.sweep_records.append_imported(records)
        log.info("imported %d sweep records from %s", len(records), path)

    # ---- answering ----------------------------------------------------------------------------
    def current_if_fresh(self) -> tuple[MetaLearnerVersion, Any] | None:
        """What :meth:`current` would return when that needs no database read, else None."""
        with self._lock:
            if self._loaded is not None and time.monotonic() - self._checked_at < ACTIVE_TTL_S:
                return self._loaded
        return None

    def current(self) -> tuple[MetaLearnerVersion, Any]:
        """The active version and its fitted learner (loaded once per version).

        Which version is active is re-read from the database at most every ``ACTIVE_TTL_S``, so a
        refit made by another process (a worker's automatic refit) is picked up within that time.

        Raises:
            MetaLearnerUnavailableError: No version and too few records to fit one.
        """
        if (fresh := self.current_if_fresh()) is not None:
            return fresh
        self._limit_threads()
        version = self.store.meta_learners.active()
        if version is None:
            if self.store.sweep_records.count() < self.settings.meta_learner.min_records:
                raise MetaLearnerUnavailableError(
                    "no meta-learner is installed and there are too few sweep records to fit one "
                    f"(have {self.store.sweep_records.count()}, "
                    f"need {self.settings.meta_learner.min_records}); "
                    "run distillation jobs or configure meta_learner.artifact"
                )
            version = self.refit(evaluate=False)
        with self._lock:
            if self._loaded is not None and self._loaded[0].version == version.version:
                self._checked_at = time.monotonic()
                return self._loaded
        from recommender import load_meta_learner

        learner = load_meta_learner(version.path)
        with self._lock:
            self._loaded = (version, learner)
            self._checked_at = time.monotonic()
        return version, learner

    def describe(self) -> dict[str, Any]:
        active = self.store.meta_learners.active()
        total = self.store.sweep_records.count()
        return {
            "available": active is not None or total >= self.settings.meta_learner.min_records,
            "active": active,
            "records": total,
            "new_records": total - (active.n_records if active else 0),
            "auto_refit_every": self.settings.meta_learner.auto_refit_every,
            "history": self.store.meta_learners.list(),
        }

    # ---- refitting ----------------------------------------------------------------------------
    def _usable_records(self) -> tuple[list[Any], int]:
        from recommender import SweepRecord

        rows = self.store.sweep_records.all_records()
        usable = []
        for row in rows:
            try:
                record = SweepRecord.from_dict(row)
            except (ValueError, TypeError) as exc:  # an old or foreign row: skip it, say so
                log.warning("skipping an unreadable sweep record: %s", exc)
                continue
            if record.kd_config is not None and record.ratio is not None:
                usable.append(record)
        return usable, len(rows)

    def refit(self, *, evaluate: bool = True) -> MetaLearnerVersion:
        """Fit a new version on every usable sweep record and make it active.

        Raises:
            NotEnoughRecordsError: Fewer than ``min_records`` usable records.
        """
        from recommender import MetaLearner, leave_one_dataset_out, records_digest, save_meta_learner
        from recommender.sweep import SWEEP_GRID  # the full runnable space, as the shipped artifact uses

        self._limit_threads()
        with self._refit_lock:
            records, total = self._usable_records()
            need = self.settings.meta_learner.min_records
            if len(records) < need:
                raise NotEnoughRecordsError(
                    f"refitting needs at least {need} sweep records with a ratio and a KD config; "
                    f"have {len(records)}"
                )
            learner = MetaLearner(grid=SWEEP_GRID).fit(records)
            evaluation = None
            if evaluate and len({r.dataset_id for r in records}) >= 2:
                evaluation = leave_one_dataset_out(records, learner=MetaLearner(grid=SWEEP_GRID))
            path = self.settings.meta_learners_dir / f"meta-learner-{uuid.uuid4().hex[:12]}.skops"
            save_meta_learner(learner, path, records=records, evaluation=evaluation)
            version = self.store.meta_learners.add(
                source="refit",
                path=str(path),
                n_records=total,
                records_digest=records_digest(records),
                evaluation=_summary(evaluation),
            )
            with self._lock:
                self._loaded = (version, learner)
                self._checked_at = time.monotonic()
            log.info("meta-learner version %d fitted on %d records", version.version, len(records))
            return version

    def maybe_refit(self) -> MetaLearnerVersion | None:
        """Apply the automatic policy (see the module docstring); None when no refit was due."""
        every = self.settings.meta_learner.auto_refit_every
        if every <= 0:
            return None
        active = self.store.meta_learners.active()
        new = self.store.sweep_records.count() - (active.n_records if active else 0)
        if new < every:
            return None
        try:
            return self.refit(evaluate=True)
        except NotEnoughRecordsError as exc:
            log.info("automatic refit skipped: %s", exc.message)
            return None


def _summary(evaluation: dict[str, Any] | None) -> dict[str, Any] | None:
    """The part of an evaluation worth keeping in the database (not every per-group row)."""
    if not evaluation:
        return None
    keep = ("n_records", "n_datasets", "n_groups", "min_configs", "summary", "k", "n_train", "n_test")
    return {k: evaluation[k] for k in keep if k in evaluation} or None
