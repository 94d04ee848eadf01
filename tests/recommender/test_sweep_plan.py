"""Sweep planning: deterministic plans, balanced coverage of every component, stable run keys."""

from __future__ import annotations

import dataclasses

import pytest

from models.config import KDConfig, ModelDescriptor, StudentSpec, TeacherTrainingConfig, TrainingConfig
from recommender.space import SearchGrid, candidate_space
from recommender.sweep import (
    SWEEP_GRID,
    SweepGroup,
    balanced_order,
    component_levels,
    coverage,
    draw_pipelines,
    plan_sweep,
    run_key,
)
from tests.recommender.synthetic import ALL_AVAILABLE

TEACHER = ModelDescriptor("minilm-l6", "bert", 6, 384, 22_700_000, 12, "vocab")
AVAILABLE = {  # the offline machine: no masked LM, no MarianMT
    **ALL_AVAILABLE,
    **{
        f"augmenter:{k}": ALL_AVAILABLE["mixup"]
        for k in ("random", "delete", "insert", "synonym", "embedding")
    },
    **{f"intermediate_loss:{k}": ALL_AVAILABLE["mixup"] for k in ("att_mse", "infonce", "tuba", "nwj")},
    "prediction_loss:kl": ALL_AVAILABLE["mixup"],
}
AVAILABLE["augmenter:contextual"] = dataclasses.replace(ALL_AVAILABLE["mixup"], available=False)
AVAILABLE["augmenter:backtranslation"] = AVAILABLE["augmenter:contextual"]


def _group(dataset: str = "d1", layers: int = 1, task: str = "classification") -> SweepGroup:
    student = ModelDescriptor(f"derived:{layers}", "bert", layers, 384, None, 12, "vocab")
    return SweepGroup(dataset, f"digest-{dataset}", task, "minilm-l6", StudentSpec(num_layers=layers),
                      TEACHER, student)  # fmt: skip


@pytest.fixture(scope="module")
def candidates() -> list[KDConfig]:
    return candidate_space("classification", teacher=TEACHER, student=_group().student_descriptor,
                           availability=AVAILABLE, grid=SWEEP_GRID)  # fmt: skip


def test_sweep_grid_holds_every_runnable_component(candidates):
    levels = coverage(candidates)
    assert set(levels["intermediate"]) == {
        "none", "mse", "cos", "ce", "att_mse", "pkd", "mi", "infonce", "tuba", "nwj"
    }  # fmt: skip
    assert set(levels["mi_alpha"]) == {"0", "0.1", "0.5", "0.7", "0.9", "1"}
    assert set(levels["augmenter"]) == {"random", "delete", "insert", "synonym", "embedding"}
    assert set(levels["prediction"]) == {"ce", "mse", "kl"} and set(levels["strategy"]) == {
        "skip",
        "last",
        "emd",
    }
    assert set(levels["mixup"]) == {"on", "off"} and set(levels["augmentation"]) == {"on", "off"}


def test_balanced_order_covers_every_level_early_and_stays_balanced(candidates):
    order = balanced_order(candidates, seed=3, limit=60)
    assert len(set(order)) == 60
    picked = [candidates[i] for i in order]
    first = coverage(picked[:10])
    assert len(first["intermediate"]) == 10  # every intermediate loss within 10 runs
    assert len(first["strategy"]) == 3 and len(first["prediction"]) == 3 and len(first["augmenter"]) == 5
    full = coverage(picked)
    assert full["mi_alpha"] == dict.fromkeys(["0", "0.1", "0.5", "0.7", "0.9", "1"], 1)  # MI: 6 of 60
    assert full["intermediate"] == dict.fromkeys(full["intermediate"], 6)
    assert full["augmentation"] == {"off": 30, "on": 30} and full["mixup"] == {"off": 30, "on": 30}
    for component in ("strategy", "prediction", "augmenter", "aug_p"):
        counts = full[component].values()
        assert max(counts) - min(counts) <= 1, (component, full[component])


def test_plans_are_deterministic_and_seeded(candidates):
    a = draw_pipelines(candidates, space="grid", budget=15, seed=7)
    assert a == draw_pipelines(candidates, space="grid", budget=15, seed=7)
    assert a != draw_pipelines(candidates, space="grid", budget=15, seed=8)
    r = draw_pipelines(candidates, space="random", budget=15, seed=7)
    assert r == draw_pipelines(candidates, space="random", budget=15, seed=7) and len(set(r)) == 15
    assert draw_pipelines(candidates[:4], space="grid", budget=None, seed=0) == [
        candidates[i] for i in balanced_order(candidates[:4], 0)
    ]
    with pytest.raises(ValueError, match="space must be one of"):
        draw_pipelines(candidates, space="bayes", budget=3, seed=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="budget must be >= 1"):
        draw_pipelines(candidates, space="grid", budget=0, seed=0)


def test_plan_interleaves_groups_and_keys_runs_by_content():
    groups = [_group("d1", 1), _group("d1", 2), _group("d2", 1, "regression")]
    training = TrainingConfig(epochs=1, max_length=32)
    plan = plan_sweep(
        groups, budget=4, seed=1, availability=AVAILABLE, base_config=KDConfig(training=training)
    )
    assert len(plan) == 12 and len({r.run_key for r in plan}) == 12
    assert [r.position for r in plan[:3]] == [0, 0, 0] and [r.group for r in plan[:3]] == groups
    assert all(r.kd_config.training == training for r in plan)
    assert all(r.kd_config.prediction.loss == "mse" for r in plan if r.group.task_kind == "regression")
    again = plan_sweep(
        groups, budget=4, seed=1, availability=AVAILABLE, base_config=KDConfig(training=training)
    )
    assert [r.run_key for r in again] == [r.run_key for r in plan]
    # groups draw with their own seeds: two students of one dataset get different pipelines
    assert {r.kd_config for r in plan if r.group == groups[0]} != {
        r.kd_config for r in plan if r.group == groups[1]
    }


def test_run_key_changes_with_every_input():
    cfg, tt, student = KDConfig(), TeacherTrainingConfig(), StudentSpec(num_layers=1)
    base = run_key("digest", "minilm-l6", student, cfg, tt)
    assert base == run_key(
        "digest", "minilm-l6", StudentSpec(num_layers=1), KDConfig(), TeacherTrainingConfig()
    )
    seeded = cfg.model_copy(update={"training": TrainingConfig(seed=1)})
    variants = [
        run_key("other", "minilm-l6", student, cfg, tt),
        run_key("digest", "mpnet-base", student, cfg, tt),
        run_key("digest", "minilm-l6", StudentSpec(num_layers=2), cfg, tt),
        run_key("digest", "minilm-l6", student, seeded, tt),
        run_key("digest", "minilm-l6", student, cfg, TeacherTrainingConfig(epochs=1)),
    ]
    assert len({base, *variants}) == 6


def test_plan_errors_are_clear():
    with pytest.raises(ValueError, match="at least one"):
        plan_sweep([], budget=2)
    with pytest.raises(ValueError, match="plan the same run"):
        plan_sweep([_group(), _group()], budget=2, availability=AVAILABLE)
    tiny = SearchGrid(intermediate_losses=("mse",), strategies=("skip",), kd_losses=("ce",), mixup=(False,),
                      max_pipeline_length=0)  # fmt: skip
    with pytest.raises(ValueError, match="no runnable pipeline"):
        plan_sweep([_group(task="regression")], budget=2, grid=tiny, availability=AVAILABLE)


def test_component_levels_name_sub_components_only_where_they_apply():
    plain = dict(component_levels(KDConfig()))
    assert plain == {"intermediate": "none", "prediction": "ce", "mixup": "off", "augmentation": "off"}
    mi = KDConfig.model_validate(
        {"intermediate": {"loss": "mi", "alpha": 0.9, "strategy": "emd"},
         "augmentation": {"pipeline": ["synonym"], "aug_p": 0.3}}
    )  # fmt: skip
    assert dict(component_levels(mi)) == {
        "intermediate": "mi", "prediction": "ce", "mixup": "off", "augmentation": "on", "strategy": "emd",
        "mi_alpha": "0.9", "augmenter": "synonym", "aug_p": "0.3",
    }  # fmt: skip


def test_planning_and_evidence_modules_do_not_import_torch():
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys, recommender.sweep, recommender.sweep_kb, recommender.sweep_findings, "
        "recommender.sweep_evidence; print([m for m in ('torch', 'transformers') if m in sys.modules])"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


def test_knowledge_base_v2_design_meets_the_width_and_seed_targets():
    from models.data.builtin import BUILTINS
    from recommender.sweep_kb import KB_HELDOUT, KB_PLANS, KB_V2

    tasks = {v.split("@")[0] for v in KB_V2.variants}
    assert set(tasks) <= set(BUILTINS) and len(KB_V2.variants) >= 16 and len(tasks) >= 8
    assert KB_HELDOUT.split("@")[0] not in tasks  # the held-out check's task is in no sweep
    assert len({s.describe() for s in KB_V2.students}) >= 4 and any(s.fresh for s in KB_V2.students)
    assert KB_V2.passes() == [(42, 10), (43, 4)] and KB_V2.repeated_share() >= 0.25
    assert KB_V2.max_runs() >= 1200
    assert KB_PLANS["v1"].max_runs() == 320 and KB_PLANS["v1"].repeated_share() == 0.0


def test_repeat_seeds_train_the_prefix_of_each_groups_order(candidates):
    # a repeat pass plans `repeat_budget` pipelines with the same plan seed: the balanced order's
    # prefix, so those cells get a second seed of the very same pipelines
    first = balanced_order(candidates, seed=5, limit=10)
    assert balanced_order(candidates, seed=5, limit=4) == first[:4]
