"""``autodistiller sweep``: train a batch of KD pipelines over a search space, resumably.

By default the sweep runs here: the service's store (SQLite in ``--data-dir``, the same one
``autodistiller serve`` uses) and its local worker, one child process per run. With ``--server``
it is submitted to a running service instead (``POST /sweeps``) and followed there. Either way a
sweep is a batch of ordinary jobs, and running the same sweep again repeats no finished run.

Exit codes: 0 done (or stopped by ``--max-runs``), 2 invalid input, 1 runs failed or another error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

cli = typer.Typer()
console = Console(stderr=True)
EXIT_INVALID = 2

DatasetsOpt = Annotated[
    list[str],
    typer.Option(
        "--dataset", help="built-in name (rotten_tomatoes@500 subsamples train) or a data file; repeat"
    ),
]
StudentsOpt = Annotated[
    str, typer.Option(help="comma list: N = N layers derived from the teacher, else a checkpoint folder")
]
DataDirOpt = Annotated[Path | None, typer.Option(help="the store's data directory (default: the service's)")]
EmbeddingsOpt = Annotated[
    str, typer.Option(help="dataset embedding meta-features: subprocess (computed) or off (missing)")
]


def fail(message: str, code: int = EXIT_INVALID) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def parse_students(text: str) -> list[Any]:
    """``"1,2"`` -> derived 1- and 2-layer students; other entries are checkpoint folders."""
    from models.config import StudentSpec

    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        out.append(StudentSpec(num_layers=int(part)) if part.isdigit() else StudentSpec(checkpoint=part))
    if not out:
        raise fail("--students names no student")
    return out


def load_grid(value: str | None) -> Any:
    """A ``SweepGridIn`` from inline JSON or a JSON file (None: the default sweep grid)."""
    from pydantic import ValidationError

    from app.schemas.sweeps import SweepGridIn

    if value is None:
        return None
    text = value if value.lstrip().startswith("{") else Path(value).read_text(encoding="utf-8")
    try:
        return SweepGridIn.model_validate_json(text)
    except ValidationError as exc:
        raise fail(f"invalid --grid: {exc}") from None


def local_services(
    data_dir: Path | None, *, executor: str = "local", embeddings: str = "subprocess", own_store: bool = False
) -> Any:
    """The service objects over the local store, with no automatic refit (a sweep only trains).

    With ``own_store`` the SQLite file in ``data_dir`` is used even where the environment names
    another database (a knowledge-base build keeps its work store to itself).
    """
    from pydantic import ValidationError

    from app.services.container import Services
    from app.settings import Settings

    values: dict[str, Any] = {
        "executor": executor,
        "embedded_worker": False,
        "meta_learner": {"embeddings": embeddings, "auto_refit_every": 0},
    }
    if data_dir is not None:
        values["data_dir"] = data_dir
        if own_store:
            values["database_url"] = f"sqlite:///{data_dir.expanduser().resolve() / 'autodistiller.db'}"
    try:
        return Services.create(Settings(**values))
    except ValidationError as exc:
        raise fail(str(exc)) from None


def local_dataset(services: Any, source: str) -> Any:
    """A registered dataset for a built-in name or a data file (registered once per store)."""
    from app.services.datasets import UploadOptions

    path = Path(source)
    if path.is_file():
        with path.open("rb") as fh:
            return services.datasets.upload(fh, path.name, UploadOptions())
    return services.sweeps.builtin_dataset(source)


def print_plan(runs: list[Any]) -> None:
    from recommender.sweep import coverage

    groups = {(r.group.dataset, r.group.student.describe()) for r in runs}
    typer.echo(f"{len(runs)} runs over {len(groups)} (dataset, student) groups")
    for component, levels in coverage([r.kd_config for r in runs]).items():
        typer.echo(f"  {component:13s} " + "  ".join(f"{k}:{v}" for k, v in levels.items()))


def describe_run(job: Any, services: Any) -> str:
    """One line about a finished job: state, dataset, student, pipeline, ratio or error code."""
    from models.config import KDConfig, StudentSpec
    from recommender.sweep_evidence import pipeline_label

    spec = job.payload.get("spec") or {}
    student = StudentSpec.model_validate(spec["student"]).describe() if spec.get("student") else "?"
    pipeline = pipeline_label(KDConfig.from_dict(spec["kd_config"])) if spec.get("kd_config") else "?"
    ratio = (job.result or {}).get("ratio")
    outcome = f"ratio {ratio:.4f}" if isinstance(ratio, float) else (job.error_code or "")
    dataset = services.store.datasets.get(job.dataset_id, include_deleted=True) if job.dataset_id else None
    return f"{job.status.value:9s} {dataset.name if dataset else '?'} {student}: {pipeline} -> {outcome}"


def write_sweep_records(records: list[dict[str, Any]], path: Path) -> int:
    from recommender import SweepRecord, write_records

    write_records([SweepRecord.from_dict(r) for r in records], path)
    return len(records)


def build_request(**kw: Any) -> Any:
    from pydantic import ValidationError

    from app.schemas.sweeps import SweepCreate
    from models.config import TeacherTrainingConfig, TrainingConfig

    training = TrainingConfig(
        epochs=kw.pop("epochs"),
        batch_size=kw["batch_size"],
        max_length=kw["max_length"],
        learning_rate=kw.pop("learning_rate"),
        seed=kw.pop("train_seed"),
    )
    batch_size, max_length = kw.pop("batch_size"), kw.pop("max_length")
    teacher_epochs, teacher_lr = kw.pop("teacher_epochs", None), kw.pop("teacher_learning_rate", 5e-5)
    teacher_training = kw.pop("teacher_training", None) or TeacherTrainingConfig(
        epochs=teacher_epochs, batch_size=batch_size, max_length=max_length, learning_rate=teacher_lr
    )
    try:
        return SweepCreate(training=training, teacher_training=teacher_training, **kw)
    except ValidationError as exc:
        raise fail(str(exc)) from None


@cli.command("sweep")
def sweep(
    dataset: DatasetsOpt,
    budget: Annotated[int, typer.Option(help="pipelines per (dataset, student) pair")],
    teacher: Annotated[str, typer.Option(help="built-in teacher or a model folder")] = "minilm-l6",
    students: StudentsOpt = "2",
    space: Annotated[str, typer.Option(help="grid (balanced order of the full grid) or random")] = "grid",
    seed: Annotated[int, typer.Option(help="seed of the plan")] = 0,
    grid: Annotated[
        str | None, typer.Option(help="restrict the space: SweepGrid JSON or a .json file")
    ] = None,
    epochs: Annotated[int, typer.Option(help="training epochs of every run")] = 3,
    max_length: Annotated[int, typer.Option(help="max sequence length (teacher fine-tuning too)")] = 128,
    batch_size: Annotated[int, typer.Option()] = 32,
    learning_rate: Annotated[float, typer.Option()] = 5e-5,
    train_seed: Annotated[int, typer.Option(help="training seed of every run")] = 42,
    teacher_epochs: Annotated[int, typer.Option(help="epochs when the teacher needs fine-tuning")] = 3,
    teacher_lr: Annotated[float, typer.Option(help="learning rate of the teacher's fine-tuning")] = 5e-5,
    name: Annotated[str | None, typer.Option(help="a name for the sweep")] = None,
    records_out: Annotated[
        Path | None, typer.Option(help="write the sweep's records (.parquet/.csv)")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the plan and exit")] = False,
    max_runs: Annotated[int | None, typer.Option(help="stop after this many runs finished here")] = None,
    data_dir: DataDirOpt = None,
    executor: Annotated[str, typer.Option(help="local (child processes) or inline (threads)")] = "local",
    embeddings: EmbeddingsOpt = "subprocess",
    server: Annotated[str | None, typer.Option(help="submit to this service URL instead")] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="AUTODISTILLER_API_KEY", help="key for --server")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="with --server: follow until done")] = True,
) -> None:
    """Plan BUDGET pipelines per (dataset, student) pair and train them as ordinary jobs."""
    fields = dict(
        name=name, teacher=teacher, students=parse_students(students), space=space, budget=budget, seed=seed,
        grid=load_grid(grid), epochs=epochs, max_length=max_length, batch_size=batch_size,
        learning_rate=learning_rate, train_seed=train_seed, teacher_epochs=teacher_epochs,
        teacher_learning_rate=teacher_lr,
    )  # fmt: skip
    if server is not None:
        from app.commands.sweep_remote import run_remote

        run_remote(server, api_key, dataset, fields, records_out=records_out, wait=wait, dry_run=dry_run)
        return
    _run_local(dataset, fields, records_out, dry_run, max_runs, data_dir, executor, embeddings)


def _run_local(
    sources: list[str], fields: dict[str, Any], records_out: Path | None, dry_run: bool,
    max_runs: int | None, data_dir: Path | None, executor: str, embeddings: str,
) -> None:  # fmt: skip
    from app.services.sweep_worker import run_sweep_locally
    from models.errors import AutoDistillerError

    services = local_services(data_dir, executor=executor, embeddings=embeddings)
    try:
        try:
            ids = [local_dataset(services, s).id for s in sources]
            req = build_request(dataset_ids=ids, **fields)
            if dry_run:
                print_plan(services.sweeps.plan(req)[0])
                return
            sweep = services.sweeps.create(req)
        except AutoDistillerError as exc:
            raise fail(exc.message) from None
        _, runs = services.sweeps.get(sweep.id)
        todo = sum(r.status == "queued" for r in runs)
        typer.echo(f"sweep {sweep.id}: {len(runs)} runs, {len(runs) - todo} already answered, {todo} queued")
        summary = run_sweep_locally(
            services, sweep.id, max_runs=max_runs, on_finished=lambda j: typer.echo(describe_run(j, services))
        )
        _, runs = services.sweeps.get(sweep.id)
        _report(runs, summary.stopped_early)
        if records_out is not None:
            n = write_sweep_records(services.sweeps.records(sweep.id), records_out)
            typer.echo(f"wrote {n} records to {records_out}")
        if any(r.status in ("failed", "cancelled") for r in runs):
            raise typer.Exit(1)
    finally:
        services.close()


def _report(runs: list[Any], stopped: str | None) -> None:
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.status] = counts.get(r.status, 0) + 1
    typer.echo("runs: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if stopped:
        typer.echo(f"stopped early ({stopped}); run the same command again to continue")
