"""``autodistiller kb``: build the built-in knowledge base, fit the shipped meta-learner, evidence.

``kb build`` sweeps a knowledge-base plan (``--plan v2``, or ``v1`` for the first 320 runs), seed
pass by seed pass, through the service's own queue (a store in ``--data-dir``, the local worker),
appends every finished run to ``<out>/sweep_records.parquet`` at once, and refits
``<out>/meta_learner.skops`` at the end (``--no-fit`` leaves the shipped learner alone). It
resumes from the records file alone (each record carries its run key) and from the work store
(queued or interrupted jobs continue from their checkpoints), so it can be spread over sessions:
``--max-runs`` bounds one session's work. ``kb evidence`` regenerates the leave-one-dataset-out
figure and the findings from the records; ``kb heldout`` trains the held-out check; ``kb noise``
repeats a fixed set of pipelines over seeds and writes the seed-noise figures
(app/commands/kb_noise.py).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from app.commands.sweep import (
    EmbeddingsOpt,
    build_request,
    describe_run,
    fail,
    load_grid,
    local_services,
    parse_students,
    print_plan,
)

cli = typer.Typer(
    help="The built-in knowledge base: sweeps, the shipped meta-learner, evidence.", no_args_is_help=True
)

# Defaults left as None come from recommender/sweep_kb.py, imported only when a command runs (the
# recommender package loads scikit-learn, too slow for ``--help``).
KB = "default: the knowledge base's, see recommender/sweep_kb.py"
OutOpt = Annotated[
    Path | None,
    typer.Option(
        help="folder of sweep_records.parquet and meta_learner.skops (default recommender/artifacts)"
    ),
]
WorkDirOpt = Annotated[Path | None, typer.Option(help="work store (default: <data dir>/kb-build)")]
RecordsOpt = Annotated[
    Path | None, typer.Option(help="the records file (default recommender/artifacts/sweep_records.parquet)")
]
ArtifactOpt = Annotated[
    Path | None, typer.Option(help="the artifact (default recommender/artifacts/meta_learner.skops)")
]
EvidenceOpt = Annotated[Path, typer.Option(help="prefix of the evidence files")]
IntOpt = Annotated[int | None, typer.Option(help=KB)]
DEFAULT_EVIDENCE = Path("bench/results/kb_evidence")


def _records_path(path: Path | None) -> Path:
    from recommender.sweep_kb import ARTIFACTS_DIR, RECORDS_FILE

    return path or ARTIFACTS_DIR / RECORDS_FILE


def _artifact_path(path: Path | None) -> Path:
    from recommender.sweep_kb import ARTIFACT_FILE, ARTIFACTS_DIR

    return path or ARTIFACTS_DIR / ARTIFACT_FILE


def _work_dir(data_dir: Path | None) -> Path:
    from app.settings import default_data_dir

    return data_dir or default_data_dir() / "kb-build"


def _command_line() -> str:
    return shlex.join(["autodistiller", *sys.argv[1:]])


def _sync(services: Any, sweep_id: str, records_file: Path) -> int:
    """Append the sweep's finished records the file lacks (e.g. after a hard stop)."""
    from recommender import SweepRecord
    from recommender.sweep_kb import append_records

    records = [SweepRecord.from_dict(r) for r in services.sweeps.records(sweep_id)]
    return append_records(records_file, records)


def run_build(
    services: Any,
    variants: list[str],
    fields: dict[str, Any],
    records_file: Path,
    *,
    max_runs: int | None = None,
    dry_run: bool = False,
    runners: Any = None,
) -> Any:
    """Plan the knowledge-base sweep over ``variants`` and work it, appending each finished run.

    Records already in ``records_file`` answer their runs (they are imported into the work store
    first), so a build resumes from the file alone; the work store's queued or interrupted jobs
    continue too. Returns the local run's summary (None for a dry run).
    """
    from app.jobs.runners import RUNNERS
    from app.services.sweep_worker import run_sweep_locally
    from models.errors import AutoDistillerError
    from recommender import SweepRecord
    from recommender.sweep_kb import append_records, read_kb_records

    try:
        imported = services.sweeps.import_records([r.to_dict() for r in read_kb_records(records_file)])
        ids = [services.sweeps.builtin_dataset(v).id for v in variants]
        req = build_request(dataset_ids=ids, **fields)
        if dry_run:
            print_plan(services.sweeps.plan(req)[0])
            return None
        sweep = services.sweeps.create(req)
    except AutoDistillerError as exc:
        raise fail(exc.message) from None
    _, runs = services.sweeps.get(sweep.id)
    todo = sum(r.status in ("queued", "running") for r in runs)
    typer.echo(f"{len(runs)} runs planned; {len(runs) - todo} answered ({imported} read from {records_file})")
    records_file.parent.mkdir(parents=True, exist_ok=True)
    _sync(services, sweep.id, records_file)

    def on_succeeded(job: Any) -> None:
        record = services.sweeps.job_record(job.id)
        if record is not None:
            append_records(records_file, [SweepRecord.from_dict(record)])

    summary = run_sweep_locally(
        services,
        sweep.id,
        on_succeeded=on_succeeded,
        on_finished=lambda job: typer.echo(describe_run(job, services)),
        max_runs=max_runs,
        runners=runners or RUNNERS,
    )
    _sync(services, sweep.id, records_file)
    stopped = f"; stopped early: {summary.stopped_early}" if summary.stopped_early else ""
    typer.echo(f"{records_file}: {len(read_kb_records(records_file))} records{stopped}")
    return summary


def _kb_fields(
    *,
    name: str,
    students: str | None,
    budget: int,
    seed: int,
    grid: str | None,
    epochs: int | None,
    max_length: int | None,
    batch_size: int | None,
    learning_rate: float | None,
    teacher_epochs: int | None,
    plan: Any = None,
) -> dict[str, Any]:
    """The sweep request's fields: the plan's settings (v1 by default) where an option is None."""
    from recommender import sweep_kb as kb

    plan = plan or kb.KB_V1
    training, teacher_training = plan.training, plan.teacher_training
    return dict(
        name=name,
        teacher=kb.KB_TEACHER,
        students=list(plan.students) if students is None else parse_kb_students(students),
        space="grid",
        budget=budget,
        seed=seed,
        grid=load_grid(grid),
        epochs=epochs or training.epochs,
        max_length=max_length or training.max_length,
        batch_size=batch_size or training.batch_size,
        learning_rate=learning_rate or training.learning_rate,
        train_seed=training.seed,
        teacher_training=teacher_training.model_copy(
            update={
                "epochs": teacher_epochs or teacher_training.epochs,
                "max_length": max_length or teacher_training.max_length,
            }
        ),
    )


def parse_kb_students(text: str) -> list[Any]:
    """``"1,2,fresh:L4-H128"``: derived students by layer count, fresh ones as ``fresh:L<layers>-H<hidden>``.

    A fresh student gets heads of 32 dimensions and a feed-forward 4 times its width.
    """
    import re

    from models.config import StudentSpec

    out = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        fresh = re.fullmatch(r"fresh:L(\d+)-H(\d+)", part)
        if fresh:
            layers, hidden = int(fresh[1]), int(fresh[2])
            out.append(
                StudentSpec(
                    fresh=True,
                    num_layers=layers,
                    hidden_size=hidden,
                    num_heads=max(1, hidden // 32),
                    intermediate_size=4 * hidden,
                )  # fmt: skip
            )
        elif part.isdigit():
            out.append(StudentSpec(num_layers=int(part)))
        else:
            raise fail(f"--students: {part!r} is neither a layer count nor fresh:L<layers>-H<hidden>")
    if not out:
        raise fail("--students names no student")
    return out


@cli.command("build")
def build(
    out: OutOpt = None,
    data_dir: WorkDirOpt = None,
    plan: Annotated[
        str, typer.Option(help="the design: v2 (wide, two seeds) or v1 (the first 320 runs)")
    ] = "v2",
    variants: Annotated[
        str | None, typer.Option(help=f"comma list of built-in dataset variants ({KB})")
    ] = None,
    heldout: Annotated[str | None, typer.Option(help=f"the variant kept out of every sweep ({KB})")] = None,
    students: Annotated[
        str | None, typer.Option(help=f"layers of derived students and fresh:L<n>-H<h> ones ({KB})")
    ] = None,
    budget_per_variant: Annotated[
        int | None, typer.Option(help=f"pipelines per (variant, student) ({KB})")
    ] = None,
    seeds: Annotated[
        str | None, typer.Option(help=f"training seeds, the first runs every pipeline ({KB})")
    ] = None,
    repeat_budget: Annotated[
        int | None, typer.Option(help=f"pipelines per group each further seed repeats ({KB})")
    ] = None,
    max_runs: Annotated[
        int | None, typer.Option(help="stop after this many runs finished (this session)")
    ] = None,
    seed: Annotated[int | None, typer.Option(help=f"seed of the plan ({KB})")] = None,
    grid: Annotated[
        str | None, typer.Option(help="restrict the space (SweepGrid JSON or file), e.g. an MI-alpha sweep")
    ] = None,
    epochs: IntOpt = None,
    max_length: IntOpt = None,
    batch_size: IntOpt = None,
    learning_rate: Annotated[float | None, typer.Option(help=KB)] = None,
    teacher_epochs: IntOpt = None,
    executor: Annotated[str, typer.Option(help="local (child processes) or inline")] = "local",
    embeddings: EmbeddingsOpt = "subprocess",
    fit: Annotated[bool, typer.Option("--fit/--no-fit", help="refit the meta-learner at the end")] = True,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the plan and exit")] = False,
) -> None:
    """Sweep the knowledge base's variants, appending each run's record as soon as it finishes."""
    import dataclasses

    from recommender import sweep_kb as kb

    if plan not in kb.KB_PLANS:
        raise fail(f"--plan must be one of {', '.join(kb.KB_PLANS)}, got {plan!r}")
    design = kb.KB_PLANS[plan]
    names = [v.strip() for v in variants.split(",") if v.strip()] if variants else list(design.variants)
    if (heldout or kb.KB_HELDOUT) in names:
        raise fail(f"the held-out variant {heldout or kb.KB_HELDOUT} must not be swept")
    try:
        seed_list = tuple(int(s) for s in seeds.split(",") if s.strip()) if seeds else design.seeds
    except ValueError:
        raise fail(f"--seeds must be a comma list of integers, got {seeds!r}") from None
    design = dataclasses.replace(
        design, variants=tuple(names), seeds=seed_list,
        budget=budget_per_variant or design.budget,
        repeat_budget=design.repeat_budget if repeat_budget is None else repeat_budget,
        plan_seed=design.plan_seed if seed is None else seed,
    )  # fmt: skip
    out = out or kb.ARTIFACTS_DIR
    records_file = out / kb.RECORDS_FILE
    fields = _kb_fields(
        name=f"knowledge base {design.name}" + ("" if grid is None else " (restricted grid)"),
        students=students, budget=design.budget, seed=design.plan_seed, grid=grid, epochs=epochs,
        max_length=max_length, batch_size=batch_size, learning_rate=learning_rate,
        teacher_epochs=teacher_epochs, plan=design,
    )  # fmt: skip
    services = local_services(_work_dir(data_dir), executor=executor, embeddings=embeddings, own_store=True)
    try:
        run_passes(services, design, fields, records_file, max_runs=max_runs, dry_run=dry_run)
    finally:
        services.close()
    if dry_run:
        return
    if fit and records_file.is_file():
        _fit(records_file, out / kb.ARTIFACT_FILE, evaluate=True)


def run_passes(
    services: Any,
    design: Any,
    fields: dict[str, Any],
    records_file: Path,
    *,
    max_runs: int | None = None,
    dry_run: bool = False,
    runners: Any = None,
) -> int:
    """Work the plan's passes in order (the first seed's full pass, then each repeat seed's).

    Returns:
        Runs finished in this call (0 for a dry run, which prints each pass's plan and the totals).
    """
    n_students = len(fields["students"])
    typer.echo(
        f"plan {design.name}: {len(design.variants)} variants x {n_students} students, passes "
        + ", ".join(f"seed {s}: {b} pipelines" for s, b in design.passes())
        + f"; {design.repeated_share():.0%} of the cells get every seed"
    )
    finished, left = 0, max_runs
    for train_seed, budget in design.passes():
        if not budget or (left is not None and left <= 0):
            continue
        seeded = {**fields, "train_seed": train_seed, "budget": budget}
        typer.echo(f"pass seed {train_seed}, {budget} pipelines per group:")
        summary = run_build(
            services,
            list(design.variants),
            seeded,
            records_file,
            max_runs=left,
            dry_run=dry_run,
            runners=runners,
        )
        if summary is not None:
            finished += summary.n_finished
            left = None if left is None else left - summary.n_finished
    return finished


def _fit(records: Path, artifact: Path, *, evaluate: bool) -> None:
    from recommender.sweep_kb import fit_knowledge_base

    try:
        info = fit_knowledge_base(records, artifact, evaluate=evaluate, progress=typer.echo)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    typer.echo(
        f"fitted on {info['n_records']} records ({info['n_datasets']} datasets), digest "
        f"{info['records_digest'][:12]}; wrote {artifact}"
        + (f"; LOO {info['evaluation']['summary']}" if info["evaluation"] else "")
    )


@cli.command("fit")
def fit_command(
    records: RecordsOpt = None,
    artifact: ArtifactOpt = None,
    evaluate: Annotated[
        bool, typer.Option("--evaluate/--no-evaluate", help="LOO summary in the sidecar")
    ] = True,
) -> None:
    """Refit the shipped meta-learner on the records file (its sidecar gets the records digest)."""
    _fit(_records_path(records), _artifact_path(artifact), evaluate=evaluate)


@cli.command("evidence")
def evidence(
    records: RecordsOpt = None,
    out: EvidenceOpt = DEFAULT_EVIDENCE,
    min_configs: Annotated[int, typer.Option(help="pipelines a group needs in the LOO evaluation")] = 5,
) -> None:
    """Leave-one-dataset-out (JSON + PNG), the findings (JSON + PNG) and a Markdown summary."""
    from recommender.sweep_evidence import write_evidence

    try:
        result = write_evidence(
            _records_path(records), out, min_configs=min_configs, command=_command_line(), progress=typer.echo
        )
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    typer.echo(f"LOO ({result['n_groups']} groups): {result['loo']}")
    for text in result["findings"].values():
        typer.echo(f"- {text}")
    typer.echo(f"wrote {out}_loo.json/.png, {out}_findings.json/.png, {out}.md")


@cli.command("heldout")
def heldout_command(
    artifact: ArtifactOpt = None,
    records: RecordsOpt = None,
    dataset: Annotated[str | None, typer.Option(help=f"a variant in no sweep ({KB})")] = None,
    students: Annotated[str, typer.Option(help="layers of the derived students")] = "1,2",
    k: Annotated[int, typer.Option(help="recommended pipelines trained")] = 3,
    n_random: Annotated[int, typer.Option(help="random pipelines trained")] = 3,
    seed: Annotated[int, typer.Option()] = 0,
    teacher_epochs: IntOpt = None,
    out: EvidenceOpt = DEFAULT_EVIDENCE,
    data_dir: WorkDirOpt = None,
    executor: Annotated[str, typer.Option(help="local (child processes) or inline")] = "local",
    embeddings: EmbeddingsOpt = "subprocess",
) -> None:
    """Train the top-k recommended, n random and the fixed-default pipelines on a held-out variant."""
    from app.commands.kb_heldout import run_heldout

    services = local_services(_work_dir(data_dir), executor=executor, embeddings=embeddings, own_store=True)
    try:
        run_heldout(
            services, artifact=_artifact_path(artifact), records_path=_records_path(records), dataset=dataset,
            students=parse_students(students), k=k, n_random=n_random, seed=seed,
            teacher_epochs=teacher_epochs, out=out, command=_command_line(),
        )  # fmt: skip
    finally:
        services.close()


@cli.command("noise")
def noise_command(
    variants: Annotated[str | None, typer.Option(help=f"comma list of variants ({KB})")] = None,
    students: Annotated[str, typer.Option(help="layers of the derived students")] = "2",
    seeds: Annotated[str, typer.Option(help="training seeds; each repeats the same pipelines")] = "1,2,3",
    pipelines: Annotated[int, typer.Option(help="pipelines per (variant, student)")] = 5,
    grid: Annotated[
        str | None, typer.Option(help=f"restrict the space (SweepGrid JSON or file) ({KB})")
    ] = None,
    setting: Annotated[str, typer.Option(help="this design's name in the noise file")] = "kb-v1",
    epochs: IntOpt = None,
    max_length: IntOpt = None,
    batch_size: IntOpt = None,
    learning_rate: Annotated[float | None, typer.Option(help=KB)] = None,
    teacher_epochs: IntOpt = None,
    records: Annotated[Path, typer.Option(help="records of the noise runs (appended, resumable)")] = Path(
        "bench/results/kb_noise_records.parquet"
    ),
    out: Annotated[Path, typer.Option(help="the noise figures (JSON, one entry per setting)")] = Path(
        "bench/results/kb_noise.json"
    ),
    max_runs: Annotated[int | None, typer.Option(help="stop after this many runs finished")] = None,
    data_dir: WorkDirOpt = None,
    executor: Annotated[str, typer.Option(help="local (child processes) or inline")] = "local",
    embeddings: EmbeddingsOpt = "subprocess",
) -> None:
    """Seed noise against pipeline spread: the same pipelines over several seeds, per group."""
    from app.commands.kb_noise import run_noise
    from recommender import sweep_kb as kb

    names = [v.strip() for v in (variants or ",".join(kb.NOISE_VARIANTS)).split(",") if v.strip()]
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise fail(f"--seeds must be a comma list of integers, got {seeds!r}") from None
    if len(seed_list) < 2:
        raise fail("noise needs at least two seeds")
    fields = _kb_fields(
        name=f"noise {setting}", students=students, budget=pipelines, seed=kb.KB_SEED,
        grid=grid or kb.NOISE_GRID, epochs=epochs, max_length=max_length, batch_size=batch_size,
        learning_rate=learning_rate, teacher_epochs=teacher_epochs,
    )  # fmt: skip
    services = local_services(_work_dir(data_dir), executor=executor, embeddings=embeddings, own_store=True)
    try:
        run_noise(
            services, names, fields, seed_list, records, out, setting=setting, command=_command_line(),
            max_runs=max_runs,
        )  # fmt: skip
    finally:
        services.close()


@cli.command("evaluate")
def evaluate_command(
    records: RecordsOpt = None,
    out: EvidenceOpt = DEFAULT_EVIDENCE,
    imported: Annotated[
        Path | None,
        typer.Option(help="a paper-format sweep table (a user's imported history) to mix into training"),
    ] = None,
    imported_features: Annotated[Path | None, typer.Option(help="its dataset-features CSV")] = None,
    fractions: Annotated[str, typer.Option(help="learning-curve shares of the history")] = "0.25,0.5,0.75,1",
) -> None:
    """Nested leave-one-source-task-out evaluation with baselines, intervals and learning curve."""
    from recommender.distiller_import import read_distiller_table
    from recommender.nested_report import write_nested_evaluation

    try:
        extra = []
        if imported is not None:
            extra = [
                r
                for r in read_distiller_table(imported, imported_features)
                if r.kd_config is not None
                and r.ratio is not None
                and r.ratio > 0  # collapsed runs say nothing
            ]
        result = write_nested_evaluation(
            _records_path(records),
            out,
            fractions=[float(f) for f in fractions.split(",") if f.strip()],
            extra=extra,
            command=_command_line(),
            progress=typer.echo,
        )
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    for method, stats in result["full"]["methods"].items():
        typer.echo(f"{method:16s} " + "  ".join(f"{m} {s['mean']:.4f}" for m, s in stats.items()))
    typer.echo(f"wrote {out}_nested.json/.md/.png")
