"""``kb noise``: repeat a fixed set of pipelines over several seeds and measure seed noise.

The same plan (plan seed, budget, grid) is worked once per training seed, so every group trains the
same ``budget`` pipelines with each seed; the teacher is fine-tuned once per variant (its seed is
fixed, so every run of a variant distils the same teacher). Every finished run is appended to a
records file at once (keyed by run key, the seed included), so the measurement resumes where it
stopped. The figures (recommender/noise.py) go into a JSON file under a setting name, so designs
measured in different sessions sit side by side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from app.commands.sweep import build_request, fail


def plan_keys(services: Any, variants: list[str], fields: dict[str, Any]) -> list[str]:
    """The run keys the knowledge-base plan of ``variants`` with ``fields`` holds (nothing runs)."""
    from models.errors import AutoDistillerError

    try:
        ids = [services.sweeps.builtin_dataset(v).id for v in variants]
        runs, _ = services.sweeps.plan(build_request(dataset_ids=ids, **dict(fields)))
    except AutoDistillerError as exc:
        raise fail(exc.message) from None
    return [r.run_key for r in runs]


def run_noise(
    services: Any,
    variants: list[str],
    fields: dict[str, Any],
    seeds: list[int],
    records_file: Path,
    out: Path,
    *,
    setting: str,
    command: str,
    max_runs: int | None = None,
    runners: Any = None,
) -> dict[str, Any] | None:
    """Work the plan once per seed in ``seeds``, then write the setting's noise figures to ``out``.

    Args:
        services: Local services (work store and worker).
        variants: Built-in dataset variants.
        fields: The sweep request's fields (as ``kb build`` makes them); ``train_seed`` is replaced.
        seeds: Training seeds; each repeats the same pipelines.
        records_file: Where every finished run is appended (resumable).
        out: The noise JSON (other settings in it are kept).
        setting: This design's name in ``out``.
        command: The command line, stored with the figures.
        max_runs: Stop after this many runs finished in this call (the figures are written anyway).
        runners: Job runners (tests pass fakes).

    Returns:
        The setting's report, or None when fewer than two seeds of any pipeline finished.
    """
    from app.commands.kb import run_build
    from recommender.noise import write_noise
    from recommender.sweep_kb import read_kb_records

    keys: set[str] = set()
    left = max_runs
    for seed in seeds:
        seeded = {**fields, "train_seed": seed}
        keys.update(plan_keys(services, variants, seeded))
        if left is not None and left <= 0:
            continue  # still collect the keys, so the figures cover what exists
        summary = run_build(services, variants, seeded, records_file, max_runs=left, runners=runners)
        if left is not None:
            left -= summary.n_finished
    records = [r for r in read_kb_records(records_file) if r.raw.get("run_key") in keys]
    if not any(r.seed is not None for r in records):
        typer.echo("no finished runs yet")
        return None
    report = write_noise(records, out, setting=setting, command=command)
    summary = report["summary"]
    typer.echo(f"{setting}: {summary['n_runs']} runs in {summary['n_groups']} groups; {summary}")
    for row in report["groups"]:
        typer.echo(
            f"  {row['dataset']} {row['student']}: seed std {_fmt(row['seed_std'])}, pipeline spread "
            f"{_fmt(row['pipeline_spread'])}, snr {_fmt(row['snr'])}, true snr {_fmt(row['true_snr'])}"
        )
    return report


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
