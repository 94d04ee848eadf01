"""``autodistiller search``: a budgeted search on the local store, with a worker in this process.

The search is the service's (``POST /searches`` makes the same one): the meta-learner's portfolio
first, then Optuna's sampler, successive halving over epochs, every rung an ordinary job run by
the local worker here. ``--out DIR`` receives ``leaderboard.json`` and the best trial's
deliverable (``DIR/best/``: student, verified ONNX and int8, report card). ``DIR/search.json``
names the search, so running the same command again after an interruption continues it (no
finished trial is trained again) instead of starting another.

Exit codes: 0 succeeded, 2 invalid input, 1 the search failed or was cancelled.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from app.commands.sweep import DataDirOpt, EmbeddingsOpt, fail, local_dataset, local_services

cli = typer.Typer()
# what a deliverable is made of (artifact names served under /jobs/{id}/artifacts)
DELIVERABLE = (
    "report.json",
    "report_card.html",
    "report_card.json",
    "export.json",
    "student.tar.gz",
    "student_onnx.tar.gz",
    "learning_curves.png",
)


def run_search_locally(
    services: Any,
    search_id: str,
    *,
    runners: Any = None,
    stop: threading.Event | None = None,
    on_event: Any = None,
    tick_s: float = 0.2,
) -> Any:
    """Work the queue and advance the search until it has finished (or ``stop`` is set).

    Returns:
        The search as it stands at the end.
    """
    from app.jobs.dispatcher import Dispatcher
    from app.jobs.executor import make_backend
    from app.jobs.runners import RUNNERS

    dispatcher = Dispatcher(
        services.store, services.settings, make_backend(services.settings), runners=runners or RUNNERS
    )
    seen = 0
    try:
        while stop is None or not stop.is_set():
            dispatcher.tick()
            search = services.searches.advance(search_id)
            for event in services.searches.events(search_id, after_id=seen):
                seen = event.id
                if on_event is not None:
                    on_event(event)
            if search.terminal:
                return search
            time.sleep(tick_s)
    finally:
        dispatcher.shutdown()
    return services.searches.get(search_id)


def write_outputs(services: Any, search_id: str, out: Path) -> dict[str, Any]:
    """``leaderboard.json`` and, for a finished search, the best trial's deliverable in ``out/best``."""
    public = services.searches.public(services.searches.get(search_id))
    board = {
        "search_id": search_id,
        "status": public.status,
        "rungs": public.rungs,
        "trials": [
            {
                "id": t.id,
                "pipeline": t.pipeline,
                "fidelity": t.fidelity,
                "score": t.score,
                "ratio": t.ratio,
                "status": t.status,
                "seconds": t.seconds,
                "source": t.source,
                "portfolio_rank": t.portfolio_rank,
                "job_ids": t.job_ids,
            }
            for t in public.leaderboard or []
        ],
        "best_trial": public.best_trial,
        "best_job_id": public.best_job_id,
    }
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "leaderboard.json", board)
    if public.best_job_id is not None:
        best = out / "best"
        best.mkdir(exist_ok=True)
        for name in services.artifacts.available(public.best_job_id):
            if name in DELIVERABLE:
                shutil.copyfile(services.artifacts.path(public.best_job_id, name), best / name)
    return board


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def _describe(event: Any) -> str | None:
    d = event.data
    if event.type == "trial":
        score = f" ratio {d['ratio']:.4f}" if isinstance(d.get("ratio"), float) else ""
        at = f" at {d['epochs']} epochs" if d.get("epochs") else ""
        nxt = f" -> {d['next_epochs']} epochs" if d.get("next_epochs") else ""
        return f"trial {d['trial']}: {d['state']}{at}{score}{nxt}"
    if event.type == "status":
        return f"search {d['status']}" + (f" ({d['reason']})" if d.get("reason") else "")
    return d.get("message")


def _resumable(services: Any, out: Path) -> str | None:
    """The search named in ``out/search.json`` if this store has it and it is still running."""
    from app.errors import NotFoundError

    path = out / "search.json"
    if not path.is_file():
        return None
    search_id = json.loads(path.read_text()).get("search_id")
    try:
        search = services.searches.get(search_id)
    except NotFoundError:
        return None
    return search.id if not search.terminal else None


@cli.command("search")
def search(
    dataset: Annotated[str, typer.Option(help="built-in name (rotten_tomatoes@500) or a data file")],
    out: Annotated[Path, typer.Option(help="folder for leaderboard.json and the best deliverable")],
    max_runs: Annotated[int | None, typer.Option(help="most trials (pipelines tried)")] = None,
    max_seconds: Annotated[int | None, typer.Option(help="wall-clock budget in seconds")] = None,
    teacher: Annotated[str, typer.Option(help="built-in teacher or a model folder")] = "minilm-l6",
    student_layers: Annotated[
        int | None, typer.Option(help="student: N layers derived from the teacher")
    ] = None,
    max_params: Annotated[int | None, typer.Option(help="or a size budget: most student parameters")] = None,
    portfolio: Annotated[int, typer.Option(help="meta-learner picks tried first")] = 3,
    min_epochs: Annotated[int, typer.Option(help="fidelity of the first rung")] = 1,
    reduction_factor: Annotated[int, typer.Option(help="successive halving's eta")] = 3,
    epochs: Annotated[
        int | None, typer.Option(help="full fidelity (default: the knowledge base's 5)")
    ] = None,
    seed: Annotated[int, typer.Option(help="seed of the sampler")] = 0,
    data_dir: DataDirOpt = None,
    executor: Annotated[str, typer.Option(help="local (child processes) or inline (threads)")] = "local",
    embeddings: EmbeddingsOpt = "subprocess",
) -> None:
    """Search KD pipelines for DATASET within a budget; write the leaderboard and the best student."""
    services = local_services(data_dir, executor=executor, embeddings=embeddings)
    try:
        services.meta_learners.bootstrap()
        search_id = _resumable(services, out)
        if search_id is None:
            search_id = _start(services, dataset, out, locals())
        else:
            typer.echo(f"search {search_id}: continuing (no finished trial is trained again)")
        final = run_search_locally(
            services, search_id, on_event=lambda e: (line := _describe(e)) and typer.echo(line)
        )
        board = write_outputs(services, search_id, out)
        typer.echo(
            f"{len(board['trials'])} trials, best trial {board['best_trial']}: {out / 'leaderboard.json'}"
        )
        if final.status != "succeeded":
            raise typer.Exit(1)
    finally:
        services.close()


def _start(services: Any, dataset: str, out: Path, opts: dict[str, Any]) -> str:
    from pydantic import ValidationError

    from app.schemas.recommend import StudentBudget
    from app.schemas.searches import SearchCreate
    from models.config import StudentSpec
    from models.errors import AutoDistillerError
    from recommender.sweep_kb import KB_TRAINING

    try:
        req = SearchCreate(
            dataset_id=local_dataset(services, dataset).id,
            teacher=opts["teacher"],
            student=StudentSpec(num_layers=opts["student_layers"]) if opts["student_layers"] else None,
            budget=StudentBudget(max_params=opts["max_params"]) if opts["max_params"] else None,
            max_runs=opts["max_runs"],
            max_seconds=opts["max_seconds"],
            portfolio_size=opts["portfolio"],
            min_epochs=opts["min_epochs"],
            reduction_factor=opts["reduction_factor"],
            seed=opts["seed"],
            training=KB_TRAINING.model_copy(update={"epochs": opts["epochs"]}) if opts["epochs"] else None,
        )
        search = services.searches.create(req)
    except ValidationError as exc:
        raise fail(str(exc)) from None
    except AutoDistillerError as exc:
        raise fail(exc.message) from None
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "search.json", {"search_id": search.id})
    typer.echo(f"search {search.id}: rungs {services.searches.public(search).rungs} epochs")
    return search.id
