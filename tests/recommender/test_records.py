"""Sweep records: validation, JSON-safe dicts, file round trips and the order-free digest."""

from __future__ import annotations

import json

import pytest

from models.config import KDConfig, ModelDescriptor
from models.errors import ConfigError
from recommender import SweepRecord, read_records, records_digest, write_records
from recommender.records import FIDELITY, cell_key, seed_means

TEACHER = ModelDescriptor("t", "bert", 6, 384, 22_700_000, 12, "vocab-a")
STUDENT = ModelDescriptor("s", "bert", 2, 384, 15_000_000, 12, "vocab-a")
MI = KDConfig.model_validate(
    {"intermediate": {"loss": "mi", "alpha": 0.9}, "augmentation": {"pipeline": ["random"], "aug_p": 0.3}}
)


def make(**kw) -> SweepRecord:
    base = dict(
        dataset_id="d1",
        teacher=TEACHER,
        student=STUDENT,
        kd_config=MI,
        student_score=0.8,
        teacher_score=0.9,
        meta_features={"n_train": 100.0, "unk_rate": None, "emb_0": float("nan")},
        metric="accuracy",
        wall_time_s=12.5,
        hardware="cpu",
        code_version="abc",
        seed=3,
        created_at="2025-01-01T00:00:00+00:00",
        run_id="r1",
        raw={"note": "x"},
        train_examples=100,
        dev_examples=40,
        epochs=5,
        max_length=32,
    )
    base.update(kw)
    return SweepRecord(**base)


def test_ratio_is_computed_and_nan_is_missing():
    r = make()
    assert r.ratio == pytest.approx(0.8 / 0.9)
    assert r.meta_features["emb_0"] is None and r.meta_features["unk_rate"] is None
    assert make(teacher_score=0.0).ratio is None  # undefined, not inf
    assert make(ratio=0.5).ratio == 0.5  # a given ratio is kept
    assert r.group_key == ("d1", "t", "s")


def test_record_is_immutable():
    r = make()
    with pytest.raises(AttributeError):
        r.ratio = 1.0
    with pytest.raises(TypeError):
        r.meta_features["n_train"] = 1.0


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"dataset_id": " "}, "dataset_id"),
        ({"source": "borrowed"}, "source must be one of"),
        ({"student_score": "high"}, "student_score must be a number"),
        ({"teacher": "t"}, "teacher must be a ModelDescriptor"),
        ({"kd_config": {"mixup": {}}}, "kd_config must be a KDConfig"),
    ],
)
def test_bad_fields_are_named(kw, message):
    with pytest.raises(ValueError, match=message):
        make(**kw)


def test_to_dict_is_json_safe_and_round_trips():
    r = make()
    d = r.to_dict()
    text = json.dumps(d, allow_nan=False)
    back = SweepRecord.from_dict(json.loads(text))
    assert back == r
    assert d["kd_config"]["intermediate"]["alpha"] == 0.9 and d["teacher"]["tokenizer_id"] == "vocab-a"


def test_from_dict_errors():
    d = make().to_dict()
    with pytest.raises(ValueError, match="unknown fields \\['colour'\\]"):
        SweepRecord.from_dict({**d, "colour": "red"})
    with pytest.raises(ValueError, match="missing teacher"):
        SweepRecord.from_dict({**d, "teacher": None})
    bad_cfg = {**d, "kd_config": {**d["kd_config"], "intermediate": {"loss": "mi"}}}
    with pytest.raises(ConfigError, match="alpha"):
        SweepRecord.from_dict(bad_cfg)


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_file_round_trip(tmp_path, suffix):
    records = [
        make(),
        make(
            run_id="r2",
            kd_config=None,
            source="imported",
            seed=None,
            student_score=None,
            teacher_score=None,
            ratio=0.7,
            meta_features={},
        ),
    ]
    path = write_records(records, tmp_path / f"recs{suffix}")
    assert read_records(path) == records


def test_unknown_suffix_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match=".parquet, .csv or .jsonl"):
        write_records([make()], tmp_path / "x.xlsx")
    with pytest.raises(FileNotFoundError):
        read_records(tmp_path / "none.parquet")


def test_malformed_row_is_named(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(make().to_dict()) + "\n" + json.dumps({"dataset_id": "x"}) + "\n")
    with pytest.raises(ValueError, match="r.jsonl line 2: sweep record is missing teacher, student"):
        read_records(path)


def test_digest_is_order_independent_and_content_sensitive():
    a, b = make(), make(run_id="r2", student_score=0.7)
    assert records_digest([a, b]) == records_digest([b, a])
    assert records_digest([a, b]) != records_digest([a, make(run_id="r2", student_score=0.71)])
    assert len(records_digest([])) == 64


def test_records_carry_seed_and_fidelity_through_every_format(tmp_path):
    r = make(seed=7, train_examples=170, dev_examples=30, epochs=6, max_length=64)
    for suffix in (".parquet", ".csv", ".jsonl"):
        (back,) = read_records(write_records([r], tmp_path / f"f{suffix}"))
        assert (back.seed, back.train_examples, back.dev_examples, back.epochs, back.max_length) == (
            7, 170, 30, 6, 64,
        )  # fmt: skip
        assert back.fidelity() == {"train_examples": 170, "dev_examples": 30, "epochs": 6, "max_length": 64}
    with pytest.raises(ValueError, match="epochs must be a whole number"):
        make(epochs=2.5)


def test_a_file_written_before_fidelity_reads_back_with_the_same_digest(tmp_path):
    old = make(**dict.fromkeys(FIDELITY))
    row = old.to_dict()
    digest_before = records_digest([old])
    for name in FIDELITY:  # what the first knowledge base's file holds: no fidelity columns at all
        del row[name]
    path = tmp_path / "old.jsonl"
    path.write_text(json.dumps(row) + "\n")
    (back,) = read_records(path)
    assert back.epochs is None and records_digest([back]) == digest_before
    # inferred from the KD config and the n_train meta-feature; the dev size of old runs is unknown
    assert back.fidelity() == {"train_examples": 100, "dev_examples": None, "epochs": 3, "max_length": 128}
    assert records_digest([make()]) != digest_before  # recorded fidelity is part of the content


def test_seed_means_average_repeated_seeds_of_one_cell():
    runs = [
        make(seed=1, run_id="a", student_score=0.6, teacher_score=0.8, raw={"run_key": "ka"}),
        make(seed=2, run_id="b", student_score=0.7, teacher_score=0.8, raw={"run_key": "kb"}),
        make(seed=1, run_id="c", student_score=0.5, teacher_score=0.8, dataset_id="d2"),
        make(seed=3, run_id="d", student_score=0.8, teacher_score=0.8, raw={"run_key": "kd"}),
    ]
    assert cell_key(runs[0]) == cell_key(runs[1]) != cell_key(runs[2])
    means = seed_means(runs)
    assert [m.dataset_id for m in means] == ["d1", "d2"]
    cell, single = means
    assert cell.student_score == pytest.approx(0.7) and cell.ratio == pytest.approx(0.7 / 0.8)
    assert cell.seed is None and cell.raw["n_seeds"] == 3 and cell.raw["seeds"] == [1, 2, 3]
    assert cell.raw["ratio_std"] == pytest.approx(0.1 / 0.8)  # sample std of 0.75, 0.875, 1.0
    assert cell.raw["run_keys"] == ["ka", "kb", "kd"]
    assert single.seed == 1 and single.raw["n_seeds"] == 1 and single.raw["ratio_std"] is None


def test_seed_means_keep_different_training_settings_apart():
    longer = MI.model_copy(update={"training": MI.training.model_copy(update={"epochs": 9, "seed": 5})})
    runs = [make(seed=1), make(seed=5, kd_config=longer, run_id="r9"), make(seed=2, dev_examples=400)]
    assert len(seed_means(runs)) == 3  # epochs or dev-set size changed: a different cell
