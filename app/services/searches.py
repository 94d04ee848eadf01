"""Searches: budgeted successive halving over KD pipelines, each rung of each trial an ordinary job.

A search starts from the meta-learner's portfolio (its top picks for the dataset, tried first via
Optuna's ``enqueue_trial``), then explores with Optuna's TPE sampler over the flat pipeline
parameters of :mod:`recommender.search`. Every trial trains at growing fidelity (epochs rungs);
when a rung's job succeeds, Optuna's ``SuccessiveHalvingPruner`` judges the trial against every
trial that reached that rung: a loser is pruned, a survivor is promoted to the next rung (a new
job), and the last rung is the full training run, delivered like any job (verified ONNX and int8,
report card naming the search). The search stops starting trials at its budget (``max_runs``
trials and/or ``max_seconds``); when no trial trains any more, the best full-fidelity trial is
its result (if the time ran out before any got there, the best survivor is trained to the end).

Restart safety: the state is in the database (``searches``, ``search_trials``), and the Optuna
study is rebuilt from the trial rows at every step (an in-memory study, so the service's schema
stays its own). A rung's job is submitted with an idempotency key naming (search, trial, epochs),
so a driver that dies mid-step and its successor never queue the same rung twice, and a finished
job is never resubmitted. Each job appends its sweep record like any job (the history grows).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError

from app.domain import SYSTEM, Caller, Dataset, Job, JobStatus, utcnow
from app.errors import IllegalTransitionError, InvalidRequestError, MetaLearnerUnavailableError
from app.jobs.dispatcher import new_worker_id
from app.schemas.jobs import JobCreate
from app.schemas.recommend import RecommendRequest
from app.schemas.searches import TRIAL_STATES, SearchCreate, SearchPublic, SearchTrialPublic
from app.schemas.sweeps import SweepGridIn
from app.services.jobs import DEFAULT_TEACHER, JobService
from app.services.model_catalog import ModelCatalog
from app.services.recommend import DEFAULT_STUDENT, RecommendService
from app.settings import Settings
from app.store import Store
from app.store.searches import Search, SearchEvent, SearchStore, SearchTrial
from models.config import KDConfig, StudentSpec, TeacherTrainingConfig, TrainingConfig
from models.errors import AutoDistillerError

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Space:
    """What a step needs that the request determines: recomputed (deterministically) per process."""

    rungs: list[int]
    candidates: list[KDConfig]
    portfolio: list[KDConfig]
    distributions: dict[str, Any]


def trial_value(rung: dict[str, Any]) -> float:
    """The objective of a finished rung: the ratio (student / teacher), else the student's score."""
    return float(rung["ratio"] if rung.get("ratio") is not None else rung["score"])


class SearchService:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        catalog: ModelCatalog,
        jobs: JobService,
        recommend: RecommendService,
    ) -> None:
        self.store = store
        self.searches = SearchStore(store.db)
        self.settings = settings
        self.catalog = catalog
        self.jobs = jobs
        self.recommend = recommend
        self.driver_id = new_worker_id()
        self._spaces: dict[str, _Space] = {}

    # ---- creating -----------------------------------------------------------------------------
    def create(self, req: SearchCreate, caller: Caller = SYSTEM) -> Search:
        """Store a search, ask the meta-learner for its portfolio and queue the first trials.

        Raises:
            NotFoundError: An unknown dataset (or another key's).
            InvalidRequestError: Rungs that do not fit the epochs, nothing runnable, no student.
        """
        from recommender.search import rungs
        from recommender.sweep_kb import KB_TEACHER_TRAINING, KB_TRAINING

        dataset = self.store.datasets.get(req.dataset_id, owner=caller.owner)
        training = req.training or KB_TRAINING
        try:
            rungs(req.min_epochs, training.epochs, req.reduction_factor)
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from exc
        teacher = req.teacher or DEFAULT_TEACHER
        items, recommendation_id, note = self._portfolio(req, dataset, teacher, caller)
        student = self._student(req, teacher, items)
        picks = [
            {
                "rank": rank,
                "kd_config": item["kd_config"],
                "predicted_ratio": item.get("predicted_ratio"),
                "recommendation_id": recommendation_id,
            }
            for rank, item in enumerate(items, start=1)
            if StudentSpec.model_validate(item["student"]) == student
        ]
        request = {
            **req.model_dump(mode="json"),
            "teacher": teacher,
            "student": student.model_dump(mode="json"),
            "training": training.model_dump(mode="json"),
            "teacher_training": (req.teacher_training or KB_TEACHER_TRAINING).model_dump(mode="json"),
        }
        budget = ", ".join(
            f"{k} {v}" for k, v in (("max_runs", req.max_runs), ("max_seconds", req.max_seconds)) if v
        )
        search = self.searches.create(
            req.name or f"search on {dataset.name} ({budget})",
            request,
            dataset_id=dataset.id,
            portfolio=picks,
            owner_key_id=caller.key_id,
        )
        try:
            self._space(search)  # an empty space is the request's fault: say so now, not in a worker
        except InvalidRequestError as exc:
            self.searches.finish(search.id, "failed", stop_reason=str(exc))
            raise
        if note:
            self.searches.add_event(search.id, "log", {"message": note})
        return self.advance(search.id)

    def _portfolio(
        self, req: SearchCreate, dataset: Dataset, teacher: str, caller: Caller
    ) -> tuple[list[dict[str, Any]], str | None, str | None]:
        """The meta-learner's top picks (items, recommendation id), or none and a note saying why."""
        if req.portfolio_size == 0:
            return [], None, None
        ask = RecommendRequest(
            dataset_id=dataset.id,
            teacher=teacher,
            student=req.student,
            budget=req.budget,
            k=req.portfolio_size,
        )
        try:
            rec = self.recommend.recommend(ask, caller)
        except MetaLearnerUnavailableError as exc:
            return [], None, f"no portfolio ({exc}): the sampler explores from scratch"
        return list(rec.items), rec.id, None

    def _student(self, req: SearchCreate, teacher: str, items: list[dict[str, Any]]) -> StudentSpec:
        if req.student is not None:
            return req.student
        if req.budget is None:
            return DEFAULT_STUDENT
        if items:
            return StudentSpec.model_validate(items[0]["student"])
        fits = self.catalog.students_within(
            self.catalog.teacher(teacher), max_params=req.budget.max_params, max_layers=req.budget.max_layers
        )
        if not fits:
            raise InvalidRequestError("no student derived from the teacher fits the budget")
        return fits[0][0]

    def _space(self, search: Search) -> _Space:
        """Rungs, runnable candidates, the portfolio and Optuna's distributions (cached per search)."""
        if search.id in self._spaces:
            return self._spaces[search.id]
        from recommender.search import distributions, rungs
        from recommender.space import candidate_space
        from recommender.sweep import SWEEP_GRID

        req = search.request
        training = TrainingConfig.model_validate(req["training"])
        teacher = self.catalog.teacher(req["teacher"])
        _, s_desc = self.catalog.student(StudentSpec.model_validate(req["student"]), teacher)
        grid = SWEEP_GRID
        if req.get("grid"):
            grid = dataclasses.replace(SWEEP_GRID, **SweepGridIn.model_validate(req["grid"]).overrides())
        dataset = self.store.datasets.get(search.dataset_id, include_deleted=True)
        candidates = candidate_space(
            dataset.task_kind,  # type: ignore[arg-type]
            teacher=teacher.descriptor,
            student=s_desc,
            base_config=KDConfig(training=training),
            grid=grid,
        )
        portfolio = [
            KDConfig.from_dict(p["kd_config"]).model_copy(update={"training": training})
            for p in search.portfolio
        ]
        if not candidates and not portfolio:
            raise InvalidRequestError(f"no runnable pipeline for {dataset.name} ({dataset.task_kind})")
        space = _Space(
            rungs=rungs(req["min_epochs"], training.epochs, req["reduction_factor"]),
            candidates=candidates,
            portfolio=portfolio,
            distributions=distributions([*candidates, *portfolio]),
        )
        self._spaces[search.id] = space
        return space

    # ---- the driver's step --------------------------------------------------------------------
    def advance_all(self) -> None:
        """One step of every running search (the worker's search driver calls it every second)."""
        for search_id in self.searches.running_ids():
            try:
                self.advance(search_id)
            except Exception:  # one broken search must not stop the others
                log.exception("search %s: step failed", search_id)

    def advance(self, search_id: str) -> Search:
        """Take in finished jobs, judge and promote trials, start new ones, finish the search.

        Idempotent and safe to run from several processes: a lease on the search lets one driver
        at a time act on it; every decision is stored before the next is made.
        """
        search = self.searches.get(search_id)
        if search.terminal or not self.searches.claim(
            search_id, self.driver_id, lease_s=self.settings.worker.lease_s
        ):
            return search
        try:
            self._step(search)
        finally:
            self.searches.release(search_id, self.driver_id)
        return self.searches.get(search_id)

    def _step(self, search: Search) -> None:
        space = self._space(search)
        exploring = self._exploring(search)
        for trial in self.searches.trials(search.id):
            if trial.status == "running" and trial.job_id is not None:
                job = self.store.jobs.get(trial.job_id)
                if job.status.terminal:
                    self._rung_finished(search, space, trial, job, exploring)
        trials = self.searches.trials(search.id)
        if search.cancel_requested:
            self._cancel(search, trials)
            return
        for trial in trials:  # a driver died between storing a rung and submitting its job
            if trial.status == "running" and trial.job_id is None and trial.target_epochs is not None:
                self._submit(search, space, trial, trial.target_epochs)
        active = sum(t.status == "running" for t in trials)
        # the first trial starts whatever the clock says: a search always trains one pipeline
        while (exploring or not trials) and active < search.request["parallel"]:
            if search.request.get("max_runs") is not None and len(trials) >= search.request["max_runs"]:
                break
            trial = self._new_trial(search, space, trials)
            if trial is None:
                break
            trials.append(trial)
            active += 1
        if active == 0:
            self._finalize(search, space, trials, exploring)

    def _exploring(self, search: Search) -> bool:
        """Whether new trials may start and survivors be promoted (within the time budget)."""
        limit = search.request.get("max_seconds")
        return not search.cancel_requested and (
            limit is None or (utcnow() - search.created_at).total_seconds() < limit
        )

    # ---- trials -------------------------------------------------------------------------------
    def _new_trial(self, search: Search, space: _Space, trials: list[SearchTrial]) -> SearchTrial | None:
        """The next trial: the next untried portfolio pick (enqueued), else the sampler's point
        snapped to the nearest untried candidate. None when every candidate was tried."""
        from recommender.search import flat_params, snap

        tried = {KDConfig.from_dict(t.kd_config).pipeline_key() for t in trials}
        study = self._study(search, space, trials)
        rank = next(
            (i for i, c in enumerate(space.portfolio, start=1) if c.pipeline_key() not in tried), None
        )
        if rank is not None:
            config = space.portfolio[rank - 1]
            study.enqueue_trial(flat_params(config))
            study.ask(space.distributions)  # the enqueued point: the sampler learns nothing new here
            source = "portfolio"
        else:
            point = study.ask(space.distributions).params
            snapped = snap(point, space.candidates, tried)
            if snapped is None:
                return None
            config, source = snapped, "sampler"
        number = len(trials)
        try:
            trial = self.searches.add_trial(
                search.id,
                number,
                source=source,
                portfolio_rank=rank,
                kd_config=config.model_dump(mode="json"),
                params=flat_params(config),
                target_epochs=space.rungs[0],
            )
        except IntegrityError:  # another driver added this trial meanwhile
            return None
        self.searches.add_event(
            search.id,
            "trial",
            {"trial": number, "state": "started", "source": source, "portfolio_rank": rank},
        )
        self._submit(search, space, trial, space.rungs[0])
        return trial

    def _submit(self, search: Search, space: _Space, trial: SearchTrial, epochs: int) -> str | None:
        """Queue the trial's rung of ``epochs`` as an ordinary job (idempotent: same rung, same job).

        A job the server refuses (e.g. an unavailable component) fails the trial, not the search.
        """
        req = search.request
        config = KDConfig.from_dict(trial.kd_config)
        config = config.model_copy(update={"training": config.training.model_copy(update={"epochs": epochs})})
        final = epochs == space.rungs[-1]
        origin = {
            "source": "search",
            "search_id": search.id,
            "trial": trial.number,
            "fidelity_epochs": epochs,
            "portfolio_rank": trial.portfolio_rank,
        }
        if trial.portfolio_rank is not None:
            pick = search.portfolio[trial.portfolio_rank - 1]
            origin |= {
                "recommendation_id": pick["recommendation_id"],
                "rank": pick["rank"],
                "predicted_ratio": pick["predicted_ratio"],
            }
        job_req = JobCreate(
            dataset_id=search.dataset_id,
            kd_config=config,
            teacher=req["teacher"],
            student=StudentSpec.model_validate(req["student"]),
            teacher_training=TeacherTrainingConfig.model_validate(req["teacher_training"]),
            resources=req["resources"],
            deliver=final,  # the full-fidelity runs are the candidates for delivery
            measure_latency=final,
            idempotency_key=f"search-{search.id}-t{trial.number}-e{epochs}",
        )
        owner = Caller(key_id=search.owner_key_id, sees_all=True)  # the search's key owns its jobs
        try:
            job, _ = self.jobs.submit(job_req, owner, origin=origin)
        except AutoDistillerError as exc:  # e.g. a component this server cannot run: the trial fails
            stored = next(t for t in self.searches.trials(search.id) if t.number == trial.number)
            event = {"trial": trial.number, "state": "failed", "error": exc.code, "message": str(exc)}
            self.searches.update_trial(
                search.id, trial.number, status="failed", rungs=stored.rungs, target_epochs=None, job_id=None,
                event=("trial", event),
            )  # fmt: skip
            return None
        self.searches.set_trial_job(search.id, trial.number, job.id)
        return job.id

    def _rung_finished(
        self, search: Search, space: _Space, trial: SearchTrial, job: Job, exploring: bool
    ) -> None:
        """Record a finished rung; complete, prune, stop or promote the trial."""
        epochs = trial.target_epochs or space.rungs[0]
        if job.status != JobStatus.SUCCEEDED:
            status = "cancelled" if job.status == JobStatus.CANCELLED else "failed"
            event = {"trial": trial.number, "state": status, "job_id": job.id, "error": job.error_code}
            self.searches.update_trial(
                search.id,
                trial.number,
                status=status,
                rungs=trial.rungs,
                target_epochs=None,
                job_id=None,
                event=("trial", event),
            )
            return
        result = job.result or {}
        seconds = (
            (job.finished_at - job.started_at).total_seconds() if job.started_at and job.finished_at else 0.0
        )
        rung = {
            "epochs": epochs,
            "score": result.get("student_score"),
            "ratio": result.get("ratio"),
            "job_id": job.id,
            "seconds": round(seconds, 3),
        }
        rungs = [*trial.rungs, rung]
        info = {"trial": trial.number, "epochs": epochs, "score": rung["score"], "ratio": rung["ratio"]}
        if epochs >= space.rungs[-1]:
            self.searches.update_trial(
                search.id,
                trial.number,
                status="complete",
                rungs=rungs,
                target_epochs=None,
                job_id=None,
                event=("trial", {**info, "state": "complete"}),
            )
            return
        pruned = self._judge(search, space, trial, rungs)
        rungs[-1]["judged"] = True  # Optuna stored it as completed_rung_<k>
        if pruned or not exploring:
            state = "pruned" if pruned else "stopped"
            self.searches.update_trial(
                search.id,
                trial.number,
                status=state,
                rungs=rungs,
                target_epochs=None,
                job_id=None,
                event=("trial", {**info, "state": state}),
            )
            return
        nxt = space.rungs[space.rungs.index(epochs) + 1]
        self.searches.update_trial(
            search.id,
            trial.number,
            status="running",
            rungs=rungs,
            target_epochs=nxt,
            job_id=None,
            event=("trial", {**info, "state": "promoted", "next_epochs": nxt}),
        )
        self._submit(search, space, trial, nxt)

    def _judge(self, search: Search, space: _Space, trial: SearchTrial, rungs: list[dict[str, Any]]) -> bool:
        """Optuna's successive-halving verdict on the trial's latest rung (True: prune it)."""
        study = self._study(search, space, self.searches.trials(search.id), judging=(trial.number, rungs))
        frozen = next(t for t in study.get_trials(deepcopy=False) if t.user_attrs["number"] == trial.number)
        return bool(study.pruner.prune(study, frozen))

    def _study(
        self,
        search: Search,
        space: _Space,
        trials: list[SearchTrial],
        judging: tuple[int, list[dict[str, Any]]] | None = None,
    ) -> optuna.Study:
        """An in-memory Optuna study rebuilt from the trial rows (``judging``: a trial's new rungs)."""
        import optuna
        from optuna.trial import TrialState, create_trial

        from recommender.sweep import stable_seed

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        req = search.request
        study = optuna.create_study(
            direction="maximize",
            sampler=optuna.samplers.TPESampler(
                seed=stable_seed(req["seed"], len(trials)),
                n_startup_trials=max(1, len(space.portfolio)),
                constant_liar=True,  # running trials repel new points: parallel trials spread out
            ),
            pruner=optuna.pruners.SuccessiveHalvingPruner(
                min_resource=req["min_epochs"],
                reduction_factor=req["reduction_factor"],
                min_early_stopping_rate=0,
            ),
        )
        states = {"complete": TrialState.COMPLETE, "failed": TrialState.FAIL, "cancelled": TrialState.FAIL}
        for t in trials:
            rungs = judging[1] if judging and judging[0] == t.number else t.rungs
            state = states.get(t.status, TrialState.PRUNED)
            if t.status == "running" or (judging and judging[0] == t.number):
                state = TrialState.RUNNING
            study.add_trial(
                create_trial(
                    state=state,
                    value=trial_value(rungs[-1]) if state == TrialState.COMPLETE else None,
                    params=t.params,
                    distributions={k: space.distributions[k] for k in t.params},
                    intermediate_values={r["epochs"]: trial_value(r) for r in rungs},
                    system_attrs={
                        f"completed_rung_{k}": trial_value(r) for k, r in enumerate(rungs) if r.get("judged")
                    },
                    user_attrs={"number": t.number},
                )
            )
        return study

    # ---- ending -------------------------------------------------------------------------------
    def _finalize(self, search: Search, space: _Space, trials: list[SearchTrial], exploring: bool) -> None:
        """No trial trains: deliver the best full-fidelity trial, or train the best survivor to the end."""
        complete = [t for t in trials if t.status == "complete"]
        if complete:
            best = max(complete, key=lambda t: (trial_value(t.rungs[-1]), -t.number))
            reason = "budget spent" if not exploring else "every trial finished"
            self.searches.finish(
                search.id,
                "succeeded",
                best_trial=best.number,
                best_job_id=best.rungs[-1]["job_id"],
                stop_reason=reason,
            )
            return
        reached = [t for t in trials if t.rungs and t.status in ("stopped", "pruned")]
        if reached:
            best = max(reached, key=lambda t: (t.rungs[-1]["epochs"], trial_value(t.rungs[-1]), -t.number))
            full = space.rungs[-1]
            self.searches.update_trial(
                search.id,
                best.number,
                status="running",
                rungs=best.rungs,
                target_epochs=full,
                job_id=None,
                event=(
                    "trial",
                    {"trial": best.number, "state": "promoted", "next_epochs": full, "final": True},
                ),
            )
            self._submit(search, space, best, full)
            return
        self.searches.finish(search.id, "failed", stop_reason="no trial finished a rung")

    def _cancel(self, search: Search, trials: list[SearchTrial]) -> None:
        for trial in trials:
            if trial.status != "running":
                continue
            if trial.job_id is not None:
                with contextlib.suppress(IllegalTransitionError):  # it may have finished meanwhile
                    self.store.jobs.request_cancel(trial.job_id)
            self.searches.update_trial(
                search.id,
                trial.number,
                status="cancelled",
                rungs=trial.rungs,
                target_epochs=None,
                job_id=trial.job_id,
                event=("trial", {"trial": trial.number, "state": "cancelled"}),
            )
        self.jobs.wake()
        self.searches.finish(search.id, "cancelled", stop_reason="cancel requested")

    def cancel(self, search_id: str, caller: Caller = SYSTEM) -> Search:
        """Cancel a running search: its queued and running trial jobs are cancelled, it ends ``cancelled``.

        Raises:
            NotFoundError: No such search (or another key's).
            IllegalTransitionError: It has finished already (409).
        """
        self.searches.get(search_id, owner=caller.owner)
        self.searches.request_cancel(search_id)
        return self.advance(search_id)

    # ---- reading ------------------------------------------------------------------------------
    def get(self, search_id: str, caller: Caller = SYSTEM) -> Search:
        return self.searches.get(search_id, owner=caller.owner)

    def list(self, *, offset: int, limit: int, caller: Caller = SYSTEM) -> tuple[list[Search], int]:
        return self.searches.list(offset=offset, limit=limit, owner=caller.owner)

    def events(self, search_id: str, after_id: int = 0, limit: int = 500) -> list[SearchEvent]:
        return self.searches.events(search_id, after_id=after_id, limit=limit)

    def leaderboard(self, search_id: str) -> list[SearchTrialPublic]:
        """Every trial, best first: highest fidelity reached, then highest score there."""
        rows = []
        for t in self.searches.trials(search_id):
            last = t.rungs[-1] if t.rungs else None
            rows.append(
                SearchTrialPublic(
                    id=t.number,
                    pipeline=t.kd_config,
                    source=t.source,
                    portfolio_rank=t.portfolio_rank,
                    status=t.status,
                    fidelity=last["epochs"] if last else 0,
                    score=last["score"] if last else None,
                    ratio=last["ratio"] if last else None,
                    seconds=round(sum(r["seconds"] for r in t.rungs), 3),
                    job_ids=[r["job_id"] for r in t.rungs] + ([t.job_id] if t.job_id else []),
                )
            )
        return sorted(
            rows, key=lambda r: (-r.fidelity, -(r.ratio if r.ratio is not None else r.score or 0.0), r.id)
        )

    def public(self, search: Search, *, with_leaderboard: bool = True) -> SearchPublic:
        from recommender.search import rungs

        board = self.leaderboard(search.id)
        counts = dict.fromkeys(TRIAL_STATES, 0)
        for row in board:
            counts[row.status] = counts.get(row.status, 0) + 1
        req = search.request
        return SearchPublic(
            id=search.id,
            name=search.name,
            status=search.status,
            request=req,
            dataset_id=search.dataset_id,
            rungs=rungs(req["min_epochs"], req["training"]["epochs"], req["reduction_factor"]),
            counts=counts,
            cancel_requested=search.cancel_requested,
            best_trial=search.best_trial,
            best_job_id=search.best_job_id,
            stop_reason=search.stop_reason,
            leaderboard=board if with_leaderboard else None,
            created_at=search.created_at,
            finished_at=search.finished_at,
        )


class SearchDriver:
    """Advances every running search once a second, in a daemon thread next to the job executor."""

    def __init__(self, searches: SearchService, interval_s: float = 1.0) -> None:
        self.searches = searches
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True, name="autodistiller-searches")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.searches.advance_all()
            except Exception:  # a database hiccup must not end the driver: retry next tick
                log.exception("search driver step failed")

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
