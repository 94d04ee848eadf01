"""The candidate space: runnable, compatible, distinct pipelines over the paper grid."""

from __future__ import annotations

import pytest

from models.availability import Availability, component_availability, runnable
from models.config import KDConfig, ModelDescriptor, check_compatible
from recommender import PAPER_GRID, SearchGrid, candidate_space
from tests.recommender.synthetic import ALL_AVAILABLE

SAME_A = ModelDescriptor("t", "bert", 12, 768, 110_000_000, 12, "vocab-a")
SAME_B = ModelDescriptor("s", "bert", 4, 312, 14_500_000, 12, "vocab-a")
OTHER_VOCAB = ModelDescriptor("s2", "roberta", 4, 312, 14_500_000, 12, "vocab-b")
DEEP = ModelDescriptor("deep", "bert", 24, 1024, 335_000_000, 16, "vocab-a")


def test_full_paper_grid_size_when_everything_is_available():
    configs = candidate_space("classification", teacher=SAME_A, student=SAME_B, availability=ALL_AVAILABLE)
    # intermediate: none + 4 losses x 3 strategies + mi x 3 strategies x 6 alphas = 31;
    # x 2 KD losses x 2 mixup; augmentation: none + (3 + 6 ordered pipelines) x 3 aug_p = 28
    assert len(configs) == 31 * 2 * 2 * 28
    assert len({c.pipeline_key() for c in configs}) == len(configs)
    assert all(runnable(c, ALL_AVAILABLE) for c in configs)


def test_regression_means_mse_kd():
    configs = candidate_space("regression", availability=ALL_AVAILABLE)
    assert configs and {c.prediction.loss for c in configs} == {"mse"}
    for c in configs[:50]:
        check_compatible(c, task_kind="regression")


def test_token_level_losses_need_a_shared_tokenizer():
    configs = candidate_space(
        "classification", teacher=SAME_A, student=OTHER_VOCAB, availability=ALL_AVAILABLE
    )
    assert {c.intermediate.loss for c in configs} == {"none", "pkd", "mi"}


def test_student_deeper_than_teacher_keeps_only_emd_or_no_intermediate():
    configs = candidate_space("classification", teacher=SAME_B, student=DEEP, availability=ALL_AVAILABLE)
    assert {c.intermediate.strategy for c in configs if c.intermediate.loss != "none"} == {"emd"}


def test_unavailable_components_are_left_out():
    report = {
        **ALL_AVAILABLE,
        "augmenter:backtranslation": Availability(False, "no MarianMT"),
        "intermediate_loss:cos": Availability(False, "switched off"),
    }
    configs = candidate_space("classification", availability=report)
    assert not any("backtranslation" in c.augmentation.pipeline for c in configs)
    assert "cos" not in {c.intermediate.loss for c in configs}
    assert any(c.augmentation.pipeline == ("random", "contextual") for c in configs)


def test_default_availability_asks_the_engine():
    configs = candidate_space("classification", grid=SearchGrid(aug_ps=(0.3,)))
    report = component_availability()
    assert configs and all(runnable(c, report) for c in configs)


def test_base_config_supplies_training_settings_and_weights():
    base = KDConfig.model_validate(
        {
            "training": {"epochs": 7, "learning_rate": 3e-5},
            "weights": {"hard": 0.5},
            "prediction": {"temperature": 2.0},
        }
    )
    configs = candidate_space(
        "classification", base_config=base, availability=ALL_AVAILABLE, grid=SearchGrid(max_pipeline_length=0)
    )
    assert {c.training.epochs for c in configs} == {7} and {c.weights.hard for c in configs} == {0.5}
    assert {c.prediction.temperature for c in configs} == {2.0}
    assert not any(c.augmentation.pipeline for c in configs)


def test_grid_and_task_kind_validation():
    assert PAPER_GRID.mi_alphas == (0.0, 0.1, 0.5, 0.7, 0.9, 1.0)
    with pytest.raises(ValueError, match="task_kind"):
        candidate_space("ranking", availability=ALL_AVAILABLE)
    assert candidate_space(
        "classification",
        availability=ALL_AVAILABLE,
        grid=SearchGrid(
            intermediate_losses=("none",), kd_losses=("ce",), mixup=(False,), max_pipeline_length=0
        ),
    ) == [KDConfig()]
