"""The held-out check of ``autodistiller kb heldout``: train recommended, random and default pipelines.

For a dataset variant that is in no sweep of the history, and each student: the meta-learner's
top-k pipelines, n other candidates drawn at random, and the history's best fixed default are
trained for real (one sweep of ordinary jobs, with the knowledge base's training settings), and
their real ratios are reported side by side.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from app.commands.sweep import describe_run, fail


def run_heldout(
    services: Any,
    *,
    artifact: Path,
    records_path: Path,
    dataset: str | None,
    students: list[Any],
    k: int,
    n_random: int,
    seed: int,
    teacher_epochs: int | None,
    out: Path,
    command: str,
    runners: Any = None,
) -> dict[str, Any]:
    """Select, train and report; writes ``<out>_heldout.json`` and ``<out>_heldout.png``."""
    from app.jobs.runners import RUNNERS
    from app.services.meta_features import with_teacher
    from app.services.sweep_worker import run_sweep_locally
    from models.config import KDConfig
    from models.errors import AutoDistillerError
    from recommender import ArtifactError, load_meta_learner, read_records
    from recommender import sweep_kb as kb
    from recommender.explain import describe
    from recommender.features import CONFIG_COMPONENTS
    from recommender.space import candidate_space
    from recommender.sweep import PlannedRun, SweepGroup, run_key
    from recommender.sweep_evidence import heldout_choices, heldout_summary, pipeline_label, plot_heldout

    name = dataset or kb.KB_HELDOUT
    try:
        learner = load_meta_learner(artifact)
        history = read_records(records_path)
    except (ArtifactError, FileNotFoundError, ValueError) as exc:
        raise fail(str(getattr(exc, "message", exc))) from None
    if name in {r.dataset_id.split(":")[0] for r in history}:
        raise fail(f"{name} is in the history: the held-out check needs a variant in no sweep")
    training = kb.training_of(history)
    tt = kb.KB_TEACHER_TRAINING.model_copy(
        update={
            "epochs": teacher_epochs or kb.KB_TEACHER_TRAINING.epochs,
            "max_length": training.max_length,
        }
    )
    try:
        ds = services.sweeps.builtin_dataset(name)
        teacher = services.catalog.teacher(kb.KB_TEACHER)
        planned: dict[str, Any] = {}  # run key -> run: the default may also be a recommended one
        rows = []
        for spec in students:
            spec, desc = services.catalog.student(spec, teacher)
            candidates = candidate_space(
                ds.task_kind, teacher=teacher.descriptor, student=desc,
                base_config=KDConfig(training=training), grid=learner.grid,
            )  # fmt: skip
            meta = with_teacher(dict(ds.meta_features), teacher.descriptor, None)
            group = SweepGroup(ds.name, ds.digest, ds.task_kind, teacher.spec, spec, teacher.descriptor, desc)
            choices = heldout_choices(
                learner, history, candidates, meta, teacher.descriptor, desc, ds.task_kind,
                k=k, n_random=n_random, seed=seed,
            )  # fmt: skip
            for i, c in enumerate(choices):
                key = run_key(ds.digest, teacher.spec, spec, c.kd_config, tt)
                planned.setdefault(key, PlannedRun(group, c.kd_config, tt, i, key))
                rows.append({"student": spec.describe(), "method": c.method, "rank": c.rank,
                             "pipeline": pipeline_label(c.kd_config), "predicted_ratio": c.predicted_ratio,
                             "components": {comp: describe(c.kd_config, comp) for comp in CONFIG_COMPONENTS},
                             "run_key": key})  # fmt: skip
        request = {"kind": "heldout", "dataset": name, "k": k, "n_random": n_random, "seed": seed}
        sweep = services.sweeps.submit(
            list(planned.values()), {ds.digest: ds}, name=f"held-out check on {name}", request=request
        )
    except (AutoDistillerError, ValueError) as exc:
        raise fail(str(getattr(exc, "message", exc))) from None
    run_sweep_locally(
        services,
        sweep.id,
        on_finished=lambda job: typer.echo(describe_run(job, services)),
        runners=runners or RUNNERS,
    )
    done = {(r.get("raw") or {}).get("run_key"): r for r in services.sweeps.records(sweep.id)}
    for row in rows:
        record = done.get(row["run_key"])
        row["ratio"] = record.get("ratio") if record else None
        row["student_score"] = record.get("student_score") if record else None
    result = {
        "dataset": name, "dataset_id": f"{ds.name}:{ds.digest[:12]}", "k": k, "n_random": n_random,
        "seed": seed,
        "artifact": str(artifact), "training": training.model_dump(mode="json"), "rows": rows,
        "summary": heldout_summary(rows), "command": command,
    }  # fmt: skip
    path = Path(f"{out}_heldout.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    plot_heldout(result, f"{out}_heldout.png")
    for method, stats in result["summary"]["overall"].items():
        typer.echo(
            f"{method:14s} mean ratio {stats['mean_ratio']}  best {stats['best_ratio']}  (n={stats['n']})"
        )
    typer.echo(f"wrote {path} and {out}_heldout.png")
    return result
