"""``kb build`` and ``kb heldout`` with the fake runner: records land after every run, a build
resumes from the records file alone, and the held-out check trains its choices side by side."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from tests.app.conftest import make_settings, synthetic_records
from tests.app.fake_runners import FAKE_RUNNERS

FAST = {"epochs": 1, "max_length": 32, "batch_size": 8, "learning_rate": 1e-4, "teacher_epochs": 1}


def _services(root: Path) -> Any:
    from app.services.container import Services

    return Services.create(make_settings(root, f"sqlite:///{root / 'kb.db'}"))


def _fields(budget: int, **extra: Any) -> dict[str, Any]:
    from models.config import StudentSpec

    base = dict(
        name="kb", teacher="minilm-l6", students=[StudentSpec(num_layers=1)], space="grid", seed=0, grid=None
    )
    return {**base, **FAST, "train_seed": 42, "budget": budget, **extra}


def _build(root: Path, records: Path, budget: int, **kw: Any) -> Any:
    from app.commands.kb import run_build

    services = _services(root)
    try:
        return run_build(services, ["rt_polarity_200"], _fields(budget), records, runners=FAKE_RUNNERS, **kw)
    finally:
        services.close()


def _keys(records: Path) -> list[str]:
    from recommender import read_records

    return [r.raw["run_key"] for r in read_records(records)]


def test_build_appends_every_run_and_resumes_from_the_file_alone(tmp_path: Path) -> None:
    records = tmp_path / "artifacts" / "sweep_records.parquet"
    summary = _build(tmp_path / "a", records, 3)
    assert summary.complete and summary.finished == {"succeeded": 3} and len(_keys(records)) == 3

    again = _build(tmp_path / "b", records, 3)  # another machine: a fresh work store, the same file
    assert again.complete and again.n_finished == 0 and len(_keys(records)) == 3

    first = _keys(records)
    stopped = _build(tmp_path / "b", records, 6, max_runs=1)
    assert stopped.stopped_early == "max_runs=1 reached" and not stopped.complete
    assert _keys(records)[:3] == first and len(_keys(records)) == 4  # the file grew by the one run
    rest = _build(tmp_path / "b", records, 6)
    assert rest.complete and rest.finished == {"succeeded": 2} and len(set(_keys(records))) == 6


def test_heldout_check_trains_recommended_random_and_default(tmp_path: Path) -> None:
    import json

    from app.commands.kb_heldout import run_heldout
    from models.config import StudentSpec
    from recommender import write_records
    from recommender.sweep_kb import fit_knowledge_base

    history = [dataclasses.replace(r, raw={"run_key": f"k{i}"}) for i, r in enumerate(synthetic_records())]
    records = write_records(history, tmp_path / "records.parquet")
    fit_knowledge_base(records, tmp_path / "m.skops", evaluate=False, max_iter=20)
    services = _services(tmp_path / "w")
    try:
        result = run_heldout(
            services, artifact=tmp_path / "m.skops", records_path=records, dataset="rt_polarity_200",
            students=[StudentSpec(num_layers=1)], k=2, n_random=2, seed=0, teacher_epochs=1,
            out=tmp_path / "ev", command="test", runners=FAKE_RUNNERS,
        )  # fmt: skip
    finally:
        services.close()
    methods = [r["method"] for r in result["rows"]]
    assert methods == ["recommended", "recommended", "random", "random", "fixed_default"]
    assert all(r["ratio"] is not None and r["predicted_ratio"] is not None for r in result["rows"])
    assert result["summary"]["overall"]["recommended"]["n"] == 2
    saved = json.loads((tmp_path / "ev_heldout.json").read_text())
    assert saved["dataset"] == "rt_polarity_200" and (tmp_path / "ev_heldout.png").stat().st_size > 0


def test_heldout_refuses_a_variant_of_the_history(tmp_path: Path) -> None:
    import typer

    from app.commands.kb_heldout import run_heldout
    from recommender import write_records
    from recommender.sweep_kb import fit_knowledge_base

    history = [dataclasses.replace(r, raw={"run_key": f"k{i}"}) for i, r in enumerate(synthetic_records())]
    records = write_records(history, tmp_path / "records.parquet")
    fit_knowledge_base(records, tmp_path / "m.skops", evaluate=False, max_iter=5)
    with pytest.raises(typer.Exit) as exit_info:
        run_heldout(
            None, artifact=tmp_path / "m.skops", records_path=records, dataset="synthetic0", students=[],
            k=1, n_random=1, seed=0, teacher_epochs=1, out=tmp_path / "ev", command="test",
        )  # fmt: skip
    assert exit_info.value.exit_code == 2


def test_noise_repeats_the_same_pipelines_per_seed_and_resumes(tmp_path: Path) -> None:
    import json

    from app.commands.kb_noise import run_noise
    from recommender import read_records

    records, out = tmp_path / "noise.parquet", tmp_path / "noise.json"

    def noise(root: str, **kw: Any) -> Any:
        services = _services(tmp_path / root)
        try:
            return run_noise(
                services, ["rt_polarity_200"], _fields(3), [1, 2], records, out, setting="s",
                command="test", runners=FAKE_RUNNERS, **kw,
            )  # fmt: skip
        finally:
            services.close()

    assert noise("a", max_runs=2) is not None  # stopped early: 2 runs of seed 1, figures written anyway
    assert len(read_records(records)) == 2
    report = noise("b")  # a fresh work store resumes from the records file
    runs = read_records(records)
    assert len(runs) == 6 and len({r.raw["run_key"] for r in runs}) == 6
    assert sorted(r.seed for r in runs) == [1, 1, 1, 2, 2, 2]
    assert {r.kd_config.pipeline_key() for r in runs if r.seed == 1} == {
        r.kd_config.pipeline_key() for r in runs if r.seed == 2
    }
    (group,) = report["groups"]
    # the fake runner's score depends on the pipeline only: no seed noise, a real pipeline spread
    assert group["seeds_per_pipeline"] == 2 and group["seed_std"] == 0.0 and group["pipeline_spread"] > 0
    assert json.loads(out.read_text())["settings"]["s"]["summary"]["n_runs"] == 6


def test_plan_passes_repeat_the_first_pipelines_with_a_second_seed(tmp_path: Path) -> None:
    from app.commands.kb import run_passes
    from recommender import read_records
    from recommender.records import seed_means
    from recommender.sweep_kb import KB_V2

    design = dataclasses.replace(
        KB_V2, variants=("rt_polarity_200",), budget=3, seeds=(42, 43), repeat_budget=1
    )
    records = tmp_path / "records.parquet"

    def passes(root: str, **kw: Any) -> int:
        services = _services(tmp_path / root)
        try:
            return run_passes(services, design, _fields(3), records, runners=FAKE_RUNNERS, **kw)
        finally:
            services.close()

    assert passes("a", max_runs=2) == 2  # a session's cap spans the passes
    assert passes("b") == 2 and passes("b") == 0  # resumes from the file; nothing left to run
    runs = read_records(records)
    assert sorted(r.seed for r in runs) == [42, 42, 42, 43]
    assert all(r.epochs == FAST["epochs"] and r.max_length == FAST["max_length"] for r in runs)
    cells = seed_means(runs)
    assert len(cells) == 3 and sorted(c.raw["n_seeds"] for c in cells) == [1, 1, 2]
