"""The search driver with the fake runners: portfolio first, the run budget, successive halving
checked against an independent computation, the time budget, cancel, and the CLI's outputs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from app.schemas.searches import SearchCreate
from models.config import KDConfig
from tests.app.conftest import make_settings

# rungs [1, 3]: 2 fake steps of 0.05 s x epochs each
FAST = {"epochs": 3, "max_steps": 2}


@pytest.fixture
def services(tmp_path: Path, database_url: str, meta_learner_artifact: Path) -> Any:
    from app.services.container import Services

    settings = make_settings(tmp_path, database_url, meta_learner={"artifact": meta_learner_artifact})
    svc = Services.create(settings)
    svc.meta_learners.bootstrap()
    try:
        yield svc
    finally:
        svc.close()


def drive(services: Any, search_id: str, *, timeout: float = 60.0, ticks: int | None = None) -> Any:
    """Run jobs with the fake runners and advance the search until it ends (or ``ticks`` ran)."""
    from app.jobs.dispatcher import Dispatcher
    from app.jobs.local import ThreadBackend
    from tests.app.fake_runners import FAKE_RUNNERS

    dispatcher = Dispatcher(services.store, services.settings, ThreadBackend(False), runners=FAKE_RUNNERS)
    deadline = time.monotonic() + timeout
    n = 0
    try:
        while time.monotonic() < deadline and (ticks is None or n < ticks):
            dispatcher.tick()
            search = services.searches.advance(search_id)
            if search.terminal:
                return search
            n += 1
            time.sleep(0.02)
    finally:
        dispatcher.shutdown()
    if ticks is None:
        raise TimeoutError(f"search {search_id} still running after {timeout} s")
    return services.searches.get(search_id)


def start(services: Any, **fields: Any) -> Any:
    dataset = services.sweeps.builtin_dataset("rt_polarity_200")
    return services.searches.create(SearchCreate(dataset_id=dataset.id, training=FAST, **fields))


def value(trial: Any) -> float:
    return trial.ratio if trial.ratio is not None else trial.score


def test_portfolio_first_budget_and_successive_halving(services: Any) -> None:
    search = start(services, max_runs=6, portfolio_size=3)
    assert [p["rank"] for p in search.portfolio] == [1, 2, 3]
    search = drive(services, search.id)
    assert search.status == "succeeded"
    trials = sorted(services.searches.leaderboard(search.id), key=lambda t: t.id)
    assert len(trials) == 6  # max_runs trials, no more
    # the meta-learner's picks come first, in rank order, with exactly the recommended pipelines
    assert [(t.source, t.portfolio_rank) for t in trials[:3]] == [("portfolio", r) for r in (1, 2, 3)]
    assert all(t.source == "sampler" for t in trials[3:])
    for t, pick in zip(trials, search.portfolio, strict=False):
        assert (
            KDConfig.from_dict(t.pipeline).pipeline_key()
            == KDConfig.from_dict(pick["kd_config"]).pipeline_key()
        )
    assert len({KDConfig.from_dict(t.pipeline).pipeline_key() for t in trials}) == 6  # nothing tried twice
    # asynchronous successive halving (eta 3), recomputed here: with one trial at a time, trial i is
    # judged against the rung-1 values of trials 0..i; it survives iff it is in their top 1/eta
    # (the top one while fewer than 2 * eta have been judged)
    rung1 = []
    for t in trials:
        first = services.store.jobs.get(t.job_ids[0]).result
        rung1.append(first["ratio"])
        ranked = sorted(rung1, reverse=True)
        survives = rung1[-1] >= ranked[max(len(rung1) // 3 - 1, 0)]
        assert t.status == ("complete" if survives else "pruned"), (t.id, rung1)
        assert len(t.job_ids) == (2 if survives else 1)  # a loser is stopped after its first rung
        assert t.fidelity == (3 if survives else 1)
    assert "pruned" in {t.status for t in trials}
    complete = [t for t in trials if t.status == "complete"]
    best = max(complete, key=value)
    assert search.best_trial == best.id and search.best_job_id == best.job_ids[-1]
    # every rung is an ordinary job whose sweep record joined the history
    job_ids = [j for t in trials for j in t.job_ids]
    assert len(set(job_ids)) == len(job_ids)
    records, count = services.store.sweep_records.list(limit=100)
    assert count == len(job_ids) and {r.job_id for r in records} == set(job_ids)
    # the best full-fidelity job was delivered, and says it came from this search
    job = services.store.jobs.get(search.best_job_id)
    assert job.payload["deliver"] is True and job.payload["spec"]["kd_config"]["training"]["epochs"] == 3
    origin = job.payload["recommendation"]
    assert origin["source"] == "search" and origin["search_id"] == search.id and origin["trial"] == best.id
    assert "report_card.json" in services.artifacts.available(job.id)
    low = services.store.jobs.get(trials[-1].job_ids[0])
    assert low.payload["deliver"] is False  # a rung below full fidelity is not delivered


def test_time_budget_trains_the_best_survivor_to_the_end(services: Any) -> None:
    search = start(services, max_seconds=1, max_runs=10, portfolio_size=2)
    time.sleep(1.2)  # the budget is spent while the first trial's first rung is queued
    search = drive(services, search.id)
    trials = services.searches.leaderboard(search.id)
    events = [(e.type, e.data) for e in services.searches.events(search.id)]
    assert search.status == "succeeded" and search.stop_reason == "budget spent", events
    assert len(trials) == 1  # no trial started after the budget
    (trial,) = trials
    assert trial.status == "complete" and trial.fidelity == 3 and len(trial.job_ids) == 2
    kinds = [e.data.get("state") for e in services.searches.events(search.id) if e.type == "trial"]
    assert kinds == ["started", "stopped", "promoted", "complete"]


def test_cancel_cancels_the_trial_jobs(services: Any) -> None:
    from app.errors import IllegalTransitionError

    search = start(services, max_runs=5, parallel=2)
    trials = services.searches.leaderboard(search.id)
    assert len(trials) == 2  # two trials train at once
    jobs = [t.job_ids[0] for t in trials]
    search = services.searches.cancel(search.id)
    assert search.status == "cancelled"
    drive(services, search.id, ticks=20)
    assert {services.store.jobs.get(j).status.value for j in jobs} == {"cancelled"}
    assert {t.status for t in services.searches.leaderboard(search.id)} == {"cancelled"}
    with pytest.raises(IllegalTransitionError, match="cancelled"):
        services.searches.cancel(search.id)


def test_rungs_must_fit_the_epochs(services: Any) -> None:
    from app.errors import InvalidRequestError

    with pytest.raises(InvalidRequestError, match="min_epochs"):
        start(services, max_runs=2, min_epochs=5)


def test_cli_outputs_leaderboard_and_best_deliverable(services: Any, tmp_path: Path) -> None:
    from app.commands.search import write_outputs

    search = drive(services, start(services, max_runs=3).id)
    board = write_outputs(services, search.id, tmp_path / "out")
    saved = json.loads((tmp_path / "out" / "leaderboard.json").read_text())
    assert saved == json.loads(json.dumps(board))
    assert len(saved["trials"]) == 3 and saved["best_trial"] == search.best_trial
    for row in saved["trials"]:
        assert {"id", "pipeline", "fidelity", "score", "ratio", "status", "seconds"} <= set(row)
        assert row["seconds"] >= 0 and row["status"] in ("complete", "pruned")
    assert saved["trials"][0]["id"] == search.best_trial  # best first
    best = tmp_path / "out" / "best"
    assert {"report.json", "report_card.json", "report_card.html", "student.tar.gz"} <= {
        p.name for p in best.iterdir()
    }


def test_a_refused_job_fails_its_trial_not_the_search(services: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from models.errors import ComponentUnavailableError

    submit = services.jobs.submit

    def refuse_trial_1(req: Any, caller: Any, *, origin: dict[str, Any]) -> Any:
        if origin["trial"] == 1:
            raise ComponentUnavailableError("the pipeline cannot run on this server: no masked LM")
        return submit(req, caller, origin=origin)

    monkeypatch.setattr(services.jobs, "submit", refuse_trial_1)
    search = drive(services, start(services, max_runs=3).id)
    assert search.status == "succeeded"
    trials = sorted(services.searches.leaderboard(search.id), key=lambda t: t.id)
    assert trials[1].status == "failed" and trials[1].job_ids == []
    assert {t.status for t in (trials[0], trials[2])} <= {"complete", "pruned"}
    failed = [e.data for e in services.searches.events(search.id) if e.data.get("state") == "failed"]
    assert failed == [
        {
            "trial": 1,
            "state": "failed",
            "error": "component_unavailable",
            "message": "the pipeline cannot run on this server: no masked LM",
        }
    ]


def test_the_cli_continues_the_search_its_out_folder_names(services: Any, tmp_path: Path) -> None:
    from app.commands.search import _resumable

    out = tmp_path / "out"
    assert _resumable(services, out) is None  # nothing to continue: a new search starts
    search = start(services, max_runs=2)
    out.mkdir()
    (out / "search.json").write_text(json.dumps({"search_id": search.id}))
    assert _resumable(services, out) == search.id  # still running: continue it
    drive(services, search.id)
    assert _resumable(services, out) is None  # finished: a new command starts a new search
    (out / "search.json").write_text(json.dumps({"search_id": "f" * 32}))
    assert _resumable(services, out) is None  # another store's search
