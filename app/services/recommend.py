"""POST /recommend: rank KD pipelines for a dataset with the active meta-learner.

Ranking is a pure function of (meta-learner version, meta-features, teacher, student, task kind),
so the top ``k`` of each such key (and ``k``) are memoised in a small LRU owned by the service
(keyed by version, so a refit never serves stale rankings); only those ``k`` get explanations,
the costly part of a ranking. Likewise an identical
request under the same version returns the recommendation resource stored for the first one
(same id): jobs reference recommendations by (id, rank), and equal questions get equal answers.
A recommendation belongs to the API key that asked, so the stored answer is reused per key.
"""

from __future__ import annotations

import gc
import json
import threading
from collections import OrderedDict
from typing import Any

from fastapi.concurrency import run_in_threadpool

from app.domain import SYSTEM, Caller, MetaLearnerVersion, Recommendation
from app.errors import InvalidRequestError
from app.schemas.recommend import RecommendRequest
from app.services.meta_features import with_teacher
from app.services.meta_learner import MetaLearnerService
from app.services.model_catalog import ModelCatalog
from app.settings import Settings
from app.store import Store
from models.config import ModelDescriptor, StudentSpec

DEFAULT_STUDENT = StudentSpec(num_layers=2)
_CACHE_SIZE = 256


class RecommendService:
    def __init__(
        self, store: Store, settings: Settings, catalog: ModelCatalog, meta_learners: MetaLearnerService
    ) -> None:
        self.store = store
        self.settings = settings
        self.catalog = catalog
        self.meta_learners = meta_learners
        self._cache: OrderedDict[tuple[Any, ...], list[Any]] = OrderedDict()
        self._answers: OrderedDict[tuple[Any, ...], Recommendation] = OrderedDict()
        self._lock = threading.Lock()
        self._warm: set[tuple[Any, ...]] = set()  # question shapes answered (see recommend_async)

    def _remember(self, cache: OrderedDict[tuple[Any, ...], Any], key: tuple[Any, ...], value: Any) -> None:
        with self._lock:
            cache[key] = value
            while len(cache) > _CACHE_SIZE:
                cache.popitem(last=False)

    def _recall(self, cache: OrderedDict[tuple[Any, ...], Any], key: tuple[Any, ...]) -> Any:
        with self._lock:
            if key in cache:
                cache.move_to_end(key)
                return cache[key]
        return None

    def _context(self, req: RecommendRequest, caller: Caller) -> tuple[dict[str, float | None], str]:
        if req.dataset_id is not None:
            dataset = self.store.datasets.get(req.dataset_id, owner=caller.owner)
            return dict(dataset.meta_features), dataset.task_kind
        meta = dict(req.meta_features or {})
        if req.task_kind is not None:
            return meta, req.task_kind
        flag = meta.get("is_regression")
        if flag is None:
            raise InvalidRequestError("inline meta_features need is_regression, or give task_kind")
        return meta, "regression" if flag else "classification"

    def _ranked(
        self,
        version: int,
        learner: Any,
        meta: dict[str, float | None],
        teacher: ModelDescriptor,
        student: ModelDescriptor,
        task_kind: str,
        k: int,
    ) -> list[Any]:
        key = (version, json.dumps(meta, sort_keys=True), teacher, student, task_kind, k)
        if (hit := self._recall(self._cache, key)) is not None:
            return hit
        try:
            ranked = learner.recommend(meta, teacher, student, k=k, task_kind=task_kind)
        except ValueError as exc:  # no runnable candidate, bad meta-features: the request's fault
            raise InvalidRequestError(str(exc)) from exc
        self._remember(self._cache, key, ranked)
        return ranked

    def recommend(self, req: RecommendRequest, caller: Caller = SYSTEM) -> Recommendation:
        """Rank pipelines (and, under a budget, students) and store the recommendation.

        Raises:
            InvalidRequestError: k above the limit, no student within the budget, bad input.
            MetaLearnerUnavailableError: No meta-learner and too few records to fit one.
        """
        answer, fresh = self._answer(req, self._context(req, caller), self.meta_learners.current(), caller)
        if fresh:
            self.store.recommendations.save(answer)
            key = self._answer_key(answer.meta_learner_version, req, caller)
            self._remember(self._answers, key, answer)
        return answer

    async def recommend_async(self, req: RecommendRequest, caller: Caller = SYSTEM) -> Recommendation:
        """:meth:`recommend` for the API.

        The ranking is about a millisecond of CPU under the GIL: handing it to a thread made each
        request dearer under load (thread switching) without adding throughput, so it runs on the
        event loop when nothing can block: inline meta-features or a dataset in SQLite, a
        meta-learner loaded and checked in the last second, no student checkpoint to read, and a
        question of a shape (teacher, student or budget, task) already answered, whose model
        descriptions and candidate table are built. Anything else (a dataset in Postgres, a
        checkpoint's config, loading a meta-learner, building a candidate table) runs in the
        thread pool. The insert is awaited, not waited for in a thread.
        """
        loaded = self.meta_learners.current_if_fresh()
        inline = None
        context: tuple[dict[str, float | None], str] | None = None
        # reading a dataset's row: SQLite (WAL) reads never wait for a writer and take a fraction
        # of a millisecond; a Postgres read is a network round trip, left to a thread
        no_wait = req.dataset_id is None or self.store.db.dialect == "sqlite"
        if no_wait and (req.student is None or req.student.checkpoint is None) and loaded is not None:
            context = self._context(req, caller)
            if self._shape(loaded[0].version, req, context[1]) in self._warm:
                inline = self._answer(req, context, loaded, caller)
        if inline is not None:
            answer, fresh = inline
        else:

            def in_thread() -> tuple[Recommendation, bool, str]:
                known = context if context is not None else self._context(req, caller)  # read once
                return *self._answer(req, known, self.meta_learners.current(), caller), known[1]

            answer, fresh, task_kind = await run_in_threadpool(in_thread)
            shape = self._shape(answer.meta_learner_version, req, task_kind)
            with self._lock:
                new_shape = shape not in self._warm
                if len(self._warm) >= _CACHE_SIZE:  # many teachers or budgets: start over
                    self._warm.clear()
                self._warm.add(shape)
            if new_shape:
                # The meta-learner and the candidate table built for this shape are a few hundred
                # thousand objects that live as long as the process. Move them out of the cyclic
                # garbage collector's reach: its full passes over them stopped the process for
                # about 0.17 s every few seconds under load (p99 at 8 clients about 140 ms, about
                # 30 ms with them frozen; README, service benchmark).
                gc.freeze()
        if fresh:
            await self.store.recommendations.save_async(answer)
            key = self._answer_key(answer.meta_learner_version, req, caller)
            self._remember(self._answers, key, answer)
        return answer

    @staticmethod
    def _shape(version: int | None, req: RecommendRequest, task_kind: str) -> tuple[Any, ...]:
        """What decides which models and candidate tables a question needs."""
        student = req.student.model_dump_json() if req.student is not None else None
        budget = req.budget.model_dump_json() if req.budget is not None else None
        return (version, req.teacher, student, budget, task_kind)

    @staticmethod
    def _answer_key(version: int | None, req: RecommendRequest, caller: Caller) -> tuple[Any, ...]:
        return (version, caller.key_id, req.model_dump_json())

    def _answer(
        self,
        req: RecommendRequest,
        context: tuple[dict[str, float | None], str],
        loaded: tuple[MetaLearnerVersion, Any],
        caller: Caller,
    ) -> tuple[Recommendation, bool]:
        """The stored answer to the same question under the same meta-learner (and False), or a
        new, not yet stored recommendation (and True). ``context`` is :meth:`_context`'s (which
        reads the dataset: a deleted one is a 404 there), ``loaded`` the meta-learner's."""
        if req.k > self.settings.limits.max_recommendations:
            raise InvalidRequestError(f"k must be at most {self.settings.limits.max_recommendations}")
        meta, task_kind = context
        version, learner = loaded
        if (
            answer := self._recall(self._answers, self._answer_key(version.version, req, caller))
        ) is not None:
            return answer, False
        teacher = self.catalog.teacher(req.teacher)
        if req.budget is not None:
            students = self.catalog.students_within(
                teacher, max_params=req.budget.max_params, max_layers=req.budget.max_layers
            )
        else:
            students = [self.catalog.student(req.student or DEFAULT_STUDENT, teacher)]
        meta = with_teacher(meta, teacher.descriptor, None)
        merged = []
        for spec, desc in students:
            ranked = self._ranked(version.version, learner, meta, teacher.descriptor, desc, task_kind, req.k)
            merged.extend((pick, rec, spec, desc) for pick, rec in enumerate(ranked))
        # each student's picks are a portfolio in pick order: students take turns, the better
        # predicted first in each turn
        merged.sort(key=lambda item: (item[0], -item[1].predicted_ratio))
        items = [
            {
                "rank": rank,
                "kd_config": rec.kd_config.model_dump(mode="json"),
                "student": spec.model_dump(mode="json"),
                "student_descriptor": desc.to_dict(),
                "predicted_ratio": rec.predicted_ratio,
                "interval": list(rec.interval),
                "interval_coverage": rec.interval_coverage,
                "expected_best_of_k": rec.expected_best_of_k,
                "explanation": rec.explanation,
            }
            for rank, (_, rec, spec, desc) in enumerate(merged[: req.k], start=1)
        ]
        answer = self.store.recommendations.new(
            dataset_id=req.dataset_id,
            meta_features=meta,
            teacher={"spec": teacher.spec, "descriptor": teacher.descriptor.to_dict()},
            k=req.k,
            meta_learner_version=version.version,
            items=items,
            owner_key_id=caller.key_id,
        )
        return answer, True
