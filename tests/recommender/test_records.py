"""Sweep records: validation, JSON-safe dicts, file round trips and the order-free digest."""

from __future__ import annotations

import json

import pytest

from models.config import KDConfig, ModelDescriptor
from models.errors import ConfigError
from recommender import SweepRecord, read_records, records_digest, write_records

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
