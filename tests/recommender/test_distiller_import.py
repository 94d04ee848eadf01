"""The importer reads the paper's table as published (fixtures written in that format)."""

from __future__ import annotations

import math

import pytest

from models.errors import DatasetError
from recommender import read_distiller_table
from recommender.distiller_import import paper_model, read_distiller_features
from tests.recommender.conftest import FIXTURES

TABLE = FIXTURES / "distiller_table.csv"
FEATURES = FIXTURES / "distiller_features.csv"


@pytest.fixture(scope="module")
def records():
    return read_distiller_table(TABLE)


def test_one_record_per_data_row_in_file_order_blank_rows_skipped(records):
    assert [r.dataset_id for r in records] == ["mnli", "mnli", "cola", "stsb", "rte", "cola", "sst-2"]
    assert [r.run_id for r in records] == [f"distiller_table:{n}" for n in (2, 3, 4, 6, 8, 9, 10)]
    assert all(r.source == "imported" for r in records)


def test_stray_spaces_are_stripped(records):
    assert records[1].kd_config.intermediate.loss == "mse"
    assert records[6].kd_config.intermediate.loss == "ce"
    assert records[2].student.name == "BERT_TINY" and records[2].teacher.name == "Roberta-large"


def test_true_false_strings_in_any_case(records):
    assert [r.kd_config.mixup.enabled for r in records] == [False, True, True, False, False, True, False]


def test_alpha_is_read_on_mi_rows_only(records):
    assert records[0].kd_config.intermediate.alpha == 0.9
    assert records[5].kd_config.intermediate.alpha == 0.0
    assert records[1].kd_config.intermediate.alpha is None  # placeholder 0.1 on an mse row
    assert records[1].raw["alpha"] == "0.1"


def test_augmentation_order_positions(records):
    assert records[0].kd_config.augmentation.pipeline == ()
    assert records[2].kd_config.augmentation.pipeline == ("random", "contextual")
    assert records[2].kd_config.augmentation.aug_p == 0.5
    stsb = records[3].kd_config.augmentation
    assert stsb.pipeline == ("contextual", "random", "backtranslation")
    assert (stsb.mode, stsb.repeated_aug) == ("repeated", 4)
    assert records[4].kd_config.augmentation.pipeline == ("backtranslation",)


def test_names_map_to_descriptors_and_unknown_names_are_kept(records):
    tiny = records[0].student
    assert (tiny.num_layers, tiny.hidden_size, tiny.num_params) == (4, 312, 14_500_000)
    assert records[2].teacher.num_layers == 24 and records[2].teacher.hidden_size == 1024
    mystery = records[4].student
    assert mystery.name == "MysteryNet"
    assert (mystery.num_layers, mystery.hidden_size, mystery.num_params, mystery.family) == (None,) * 4
    assert paper_model("bert-base").name == "BERT_BASE"  # case and '-'/'_' insensitive


def test_scores_ratio_and_teacher_score(records):
    r = records[0]
    assert (r.student_score, r.ratio, r.metric) == (0.816, 0.97, "paper_best_dev")
    assert r.teacher_score == pytest.approx(0.816 / 0.97)
    assert r.meta_features["teacher_score"] == pytest.approx(0.816 / 0.97)
    collapsed = records[5]  # score 0, ratio 0: the teacher's score is unknown, not infinite
    assert collapsed.ratio == 0.0 and collapsed.teacher_score is None
    assert r.no_kd_score is None and r.raw["baseline_score"] == "56.2"  # GLUE CBOW, not a student score


def test_meta_features_from_table_and_glue_facts(records):
    mnli = records[0].meta_features
    assert mnli["n_train"] == 393000 and mnli["log_n_train"] == pytest.approx(math.log10(393000))
    assert (mnli["is_pair"], mnli["n_labels"], mnli["is_regression"]) == (1.0, 3.0, 0.0)
    assert records[3].meta_features["is_regression"] == 1.0
    assert records[6].meta_features["is_pair"] == 0.0  # SST-2 found under its joined key
    assert not any(k.startswith("paper_feat_") for k in mnli)


def test_features_file_joins_on_task_and_wins_over_rounded_sizes():
    recs = read_distiller_table(TABLE, FEATURES)
    mnli, sst = recs[0].meta_features, recs[6].meta_features
    assert mnli["n_train"] == 392702  # exact, not the table's rounded 393000
    assert mnli["paper_feat_0"] == 0.0 and mnli["paper_feat_99"] == pytest.approx(0.99)
    assert sst["paper_feat_1"] == pytest.approx(3.01) and sst["n_train"] == 67349
    assert recs[4].meta_features.get("paper_feat_0") is None  # rte has no features row: missing stays missing
    assert len([k for k in mnli if k.startswith("paper_feat_")]) == 100


def test_features_file_reader():
    feats = read_distiller_features(FEATURES)
    assert set(feats) == {"mnli", "cola", "stsb", "sst2"}
    assert feats["stsb"]["n_labels"] == 1 and feats["stsb"]["is_regression"] == 1.0


def test_missing_columns_are_named(tmp_path):
    bad = tmp_path / "t.csv"
    bad.write_text("Model,Teacher,score\nA,B,0.5\n")
    with pytest.raises(DatasetError, match="missing columns.*intermediate_loss_type"):
        read_distiller_table(bad)


def test_bad_rows_are_all_listed(tmp_path):
    lines = TABLE.read_text().splitlines()
    bad = tmp_path / "t.csv"
    bad.write_text(
        "\n".join(
            [
                lines[0],
                lines[1].replace(",mi,", ",magic,"),
                lines[2].replace("TRUE", "maybe"),
                lines[1].replace("0.816", "n/a"),
            ]
        )
        + "\n"
    )
    with pytest.raises(DatasetError) as info:
        read_distiller_table(bad)
    text = str(info.value)
    assert "3 unreadable rows" in text
    assert "line 2: intermediate_loss_type='magic'" in text
    assert "line 3: mixup='maybe'" in text
    assert "line 4: score='n/a' is not a number" in text


def test_duplicate_order_positions_are_refused(tmp_path):
    lines = TABLE.read_text().splitlines()
    bad = tmp_path / "t.csv"
    bad.write_text(lines[0] + "\n" + lines[1].rsplit(",", 3)[0] + ",1,1,0\n")
    with pytest.raises(DatasetError, match="share order position 1"):
        read_distiller_table(bad)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        read_distiller_table(tmp_path / "nope.csv")
