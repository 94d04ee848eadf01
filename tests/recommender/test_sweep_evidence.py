"""Knowledge-base files and evidence on a SYNTHETIC history: record appends, the fit, the findings,
the evidence files and the held-out selection (no training here)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from sklearn.base import clone

from recommender import FixedDefaultRecommender, MetaLearner, load_meta_learner, read_records, records_digest
from recommender.persistence import read_sidecar
from recommender.sweep_evidence import heldout_choices, heldout_summary, plot_heldout, write_evidence
from recommender.sweep_findings import findings, history_frame
from recommender.sweep_kb import append_records, fit_knowledge_base, read_kb_records, training_of
from tests.recommender.conftest import FAST
from tests.recommender.synthetic import STUDENTS, TEACHERS, synthetic_history


@pytest.fixture(scope="module")
def keyed():
    """The synthetic history with run keys, as the knowledge base stores it."""
    history = synthetic_history(4, runs_per_group=(6, 10), seed=2)
    return [dataclasses.replace(r, raw={"run_key": f"k{i}"}) for i, r in enumerate(history)]


def test_append_records_skips_known_run_keys(tmp_path, keyed):
    path = tmp_path / "kb" / "records.parquet"
    assert read_kb_records(path) == []
    path.parent.mkdir()
    assert append_records(path, keyed[:5]) == 5
    assert append_records(path, keyed[3:8]) == 3
    assert [r.raw["run_key"] for r in read_records(path)] == [f"k{i}" for i in range(8)]
    assert not list(path.parent.glob(".*tmp*"))  # the atomic rewrite leaves nothing behind


def test_fit_knowledge_base_writes_a_compressed_artifact_matching_the_file(tmp_path, keyed):
    records = tmp_path / "records.parquet"
    append_records(records, keyed)
    info = fit_knowledge_base(records, tmp_path / "m.skops", max_iter=20)
    assert info["n_records"] == len(keyed) and info["n_datasets"] == 4
    assert set(info["evaluation"]["summary"]) == {
        "meta_learner",
        "fixed_default",
        "nearest_datasets",
        "random",
    }
    assert read_sidecar(tmp_path / "m.skops")["records_digest"] == records_digest(read_records(records))
    learner = load_meta_learner(tmp_path / "m.skops")
    # the hyper-parameters were chosen by leave-one-source-task-out; refitting with them gives the same
    assert learner.get_params()["target"] in ("ratio", "relative")
    np.testing.assert_allclose(
        learner.predict(keyed[:5]), clone(learner).fit(read_records(records)).predict(keyed[:5])
    )


def test_findings_measure_effects_on_group_relative_ratios(keyed):
    frame = history_frame(keyed)
    assert np.allclose(frame.groupby("group")["relative"].mean(), 0.0)
    assert frame["rank"].between(0, 1).all()
    result = findings(keyed)
    assert result["n_records"] == len(keyed) and len(result["datasets"]) == 4
    inter = result["tables"]["intermediate"]
    assert sum(row["n"] for row in inter) == len(keyed)
    assert [row["mean_relative"] for row in inter] == sorted(
        (row["mean_relative"] for row in inter), reverse=True
    )
    assert all(v is None or 0.0 <= v <= 1.0 for v in result["effect_size"].values())
    # effects checked against a direct computation (every synthetic dataset has > 1000 examples)
    on, off = frame[frame["augmentation"] == "on"], frame[frame["augmentation"] == "off"]
    expected = on["relative"].mean() - off["relative"].mean()
    assert result["augmentation_by_size"] == [
        {"size": ">1000", "n_on": len(on), "n_off": len(off), "effect": pytest.approx(expected)}
    ]
    assert {row["student_layers"] for row in result["augmentation_by_student"]} == {"2", "4", "6"}
    both = result["augmentation_by_size_and_student"]
    assert {(row["size"], row["student_layers"]) for row in both} == {(">1000", n) for n in ("2", "4", "6")}
    assert set(result["statements"]) == {"1_intermediate_matters_most", "2_mi_alpha", "3_augmentation"}
    with pytest.raises(ValueError, match="no record"):
        history_frame([dataclasses.replace(keyed[0], kd_config=None)])


def test_write_evidence_regenerates_every_file(tmp_path, keyed):
    records = tmp_path / "records.parquet"
    append_records(records, keyed)
    prefix = tmp_path / "out" / "kb_evidence"
    rows = [
        {"student": "s", "method": m, "rank": 1, "pipeline": "p", "predicted_ratio": 0.9, "ratio": r}
        for m, r in (("recommended", 0.95), ("random", 0.9), ("fixed_default", None))
    ]
    heldout = {"dataset": "held", "k": 1, "rows": rows, "summary": heldout_summary(rows)}
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "kb_evidence_heldout.json").write_text(json.dumps(heldout))
    result = write_evidence(records, prefix, max_iter=20, min_configs=3, command="autodistiller kb evidence")
    assert result["n_groups"] > 0 and result["loo"]["meta_learner"] is not None
    for suffix in ("_loo.json", "_loo.png", "_findings.json", "_findings.png", ".md"):
        assert (tmp_path / "out" / f"kb_evidence{suffix}").stat().st_size > 0
    loo = json.loads((tmp_path / "out" / "kb_evidence_loo.json").read_text())
    assert loo["records_digest"] == records_digest(read_records(records))
    md = (tmp_path / "out" / "kb_evidence.md").read_text()
    assert "autodistiller kb evidence" in md and "kb_evidence_loo.png" in md and "Held-out variant held" in md


def test_heldout_choices_are_top_k_random_others_and_the_fixed_default(keyed):
    learner = MetaLearner(**FAST).fit(keyed)
    candidates = list(dict.fromkeys(r.kd_config for r in keyed))
    meta = dict(keyed[0].meta_features)
    kind = "regression" if meta["is_regression"] else "classification"
    choices = heldout_choices(
        learner, keyed, candidates, meta, TEACHERS[0], STUDENTS[0], kind, k=3, n_random=3
    )
    assert [c.method for c in choices] == ["recommended"] * 3 + ["random"] * 3 + ["fixed_default"]
    top = learner.recommend(meta, TEACHERS[0], STUDENTS[0], k=3, candidates=candidates, task_kind=kind)
    assert [c.kd_config for c in choices[:3]] == [r.kd_config for r in top]
    assert len({c.kd_config for c in choices[:6]}) == 6  # random ones differ from the top-k
    assert (
        choices[-1].kd_config.pipeline_key()
        == FixedDefaultRecommender().fit(keyed).default_config_.pipeline_key()
    )
    again = heldout_choices(learner, keyed, candidates, meta, TEACHERS[0], STUDENTS[0], kind, k=3, n_random=3)
    assert again == choices
    assert training_of(keyed) == keyed[0].kd_config.training
    with pytest.raises(ValueError, match="need at least"):
        heldout_choices(learner, keyed, candidates[:4], meta, TEACHERS[0], STUDENTS[0], kind, k=3, n_random=3)


def test_heldout_summary_and_plot(tmp_path):
    rows = [
        {"student": "derived:1", "method": "recommended", "rank": 1, "ratio": 0.95,
         "components": {"intermediate": "a", "mixup": "on", "weights": "w"}},
        {"student": "derived:1", "method": "recommended", "rank": 2, "ratio": 0.93,
         "components": {"intermediate": "b", "mixup": "off", "weights": "w"}},
        {"student": "derived:1", "method": "random", "ratio": 0.9},
        {"student": "derived:1", "method": "fixed_default", "ratio": None},
    ]  # fmt: skip
    summary = heldout_summary(rows)
    assert summary["top1_vs_default"]["derived:1"] == {
        "recommended_top1_ratio": 0.95,
        "fixed_default_ratio": None,
        "min_components_differing_between_picks": 2,
    }
    assert summary["overall"]["recommended"] == {
        "n": 2,
        "mean_ratio": pytest.approx(0.94),
        "best_ratio": 0.95,
    }
    assert summary["overall"]["fixed_default"] == {"n": 0, "mean_ratio": None, "best_ratio": None}
    result = {"dataset": "held", "k": 2, "rows": rows, "summary": summary}
    assert plot_heldout(result, tmp_path / "h.png").stat().st_size > 0
