"""The torch-free KD pipeline config: validation, serialisation, compatibility checks."""

import json
import subprocess
import sys

import pytest

from models.config import (
    INTERMEDIATE_LOSSES,
    DistillSpec,
    KDConfig,
    ModelDescriptor,
    StudentSpec,
    check_compatible,
    kd_config_schema,
)
from models.errors import ConfigError, IncompatibleModelsError


def test_defaults_round_trip_through_json():
    cfg = KDConfig.from_dict(
        {
            "intermediate": {"loss": "mi", "alpha": 0.9, "strategy": "emd"},
            "augmentation": {"pipeline": ["random", "synonym"], "aug_p": 0.3},
        }
    )
    again = KDConfig.from_json(cfg.to_json())
    assert again == cfg
    assert again.augmentation.pipeline == ("random", "synonym")
    assert cfg.flat()["intermediate.alpha"] == 0.9


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"intermediate": {"loss": "mi"}}, "needs intermediate.alpha"),
        ({"intermediate": {"loss": "mse", "alpha": 0.5}}, "only used with loss='mi'"),
        ({"intermediate": {"loss": "bogus"}}, "intermediate.loss"),
        ({"augmentation": {"pipeline": ["random", "random"]}}, "twice"),
        ({"augmentation": {"pipeline": ["random"], "mode": "repeated"}}, "repeated_aug >= 2"),
        ({"augmentation": {"aug_p": 0}}, "aug_p"),
        ({"weights": {"kd": 0, "intermediate": 0, "hard": 0}}, "at least one"),
        ({"training": {"epochs": 0}}, "epochs"),
        ({"unknown_section": {}}, "unknown_section"),
    ],
)
def test_invalid_configs_are_refused_with_a_reason(data, fragment):
    with pytest.raises(ConfigError) as err:
        KDConfig.from_dict(data)
    assert fragment in err.value.message


def test_regression_refuses_ce_kd():
    cfg = KDConfig.from_dict({"prediction": {"loss": "ce"}})
    with pytest.raises(ConfigError, match="use prediction.loss='mse'"):
        check_compatible(cfg, task_kind="regression")
    check_compatible(KDConfig.from_dict({"prediction": {"loss": "mse"}}), task_kind="regression")


def test_token_level_loss_refused_across_tokenizers():
    t = ModelDescriptor("t", num_layers=6, hidden_size=384, tokenizer_id="aaa")
    s = ModelDescriptor("s", num_layers=2, hidden_size=256, tokenizer_id="bbb")
    with pytest.raises(IncompatibleModelsError, match="different tokenizers"):
        check_compatible(
            KDConfig.from_dict({"intermediate": {"loss": "mse"}}),
            task_kind="classification",
            teacher=t,
            student=s,
        )
    # [CLS]-level losses are fine across tokenizers.
    check_compatible(
        KDConfig.from_dict({"intermediate": {"loss": "mi", "alpha": 0.9}}),
        task_kind="classification",
        teacher=t,
        student=s,
    )


def test_student_deeper_than_teacher_is_refused_for_skip():
    t = ModelDescriptor("t", num_layers=2, tokenizer_id="a")
    s = ModelDescriptor("s", num_layers=4, tokenizer_id="a")
    with pytest.raises(IncompatibleModelsError, match="4 layers and the teacher only 2"):
        check_compatible(
            KDConfig.from_dict({"intermediate": {"loss": "pkd"}}),
            task_kind="classification",
            teacher=t,
            student=s,
        )


def test_schema_lists_every_intermediate_loss():
    schema = json.dumps(kd_config_schema())
    for key in INTERMEDIATE_LOSSES:
        assert f'"{key}"' in schema


def test_student_spec_needs_exactly_one_form():
    with pytest.raises(ValueError, match="exactly one"):
        StudentSpec(checkpoint="x", num_layers=2)
    assert StudentSpec(layers=(0, 3)).describe() == "layers:0,3"
    assert DistillSpec(dataset="rt_polarity_200").student.num_layers == 2


def test_pipeline_key_ignores_seed_and_budget():
    a = KDConfig.from_dict({"training": {"seed": 1, "epochs": 2}})
    b = KDConfig.from_dict({"training": {"seed": 2, "epochs": 5}})
    c = KDConfig.from_dict({"mixup": {"enabled": True}})
    assert a.pipeline_key() == b.pipeline_key() != c.pipeline_key()


def test_config_module_does_not_import_torch():
    code = "import models, models.config, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize(
    "config",
    [
        '{"prediction": {"temperature": 1e400}}',
        '{"mixup": {"enabled": true, "alpha": 1e400}}',
        '{"weights": {"kd": 1e400}}',
        '{"training": {"weight_decay": 1e400}}',
        '{"training": {"max_grad_norm": 1e400}}',
        '{"prediction": {"temperature": NaN}}',
    ],
)
def test_every_float_is_finite(config):
    # Python's json reads 1e400 as inf; it must be refused, not stored and shown as null
    with pytest.raises(ConfigError, match="finite"):
        KDConfig.from_dict(json.loads(config))
    with pytest.raises(ConfigError):
        KDConfig.from_json(config)


@pytest.mark.parametrize(
    ("section", "field", "value"),
    [
        ("prediction", "temperature", 101.0),
        ("mixup", "alpha", 100.5),
        ("weights", "hard", 1001.0),
        ("training", "seed", 2**32),
        ("training", "seed", -1),
        ("training", "max_steps", 10**12),
        ("training", "grad_accumulation", 10**6),
    ],
)
def test_values_outside_their_documented_range_are_refused(section, field, value):
    with pytest.raises(ConfigError, match=field):
        KDConfig.from_dict({section: {field: value}})
    edge = {"temperature": 100.0, "alpha": 100.0, "hard": 1000.0}.get(field)
    if edge is not None:  # the bound itself is allowed
        assert getattr(getattr(KDConfig.from_dict({section: {field: edge}}), section), field) == edge


@pytest.mark.parametrize(
    "student",
    [
        {"fresh": True, "num_layers": 2, "hidden_size": 10**12},
        {"fresh": True, "num_layers": 2, "num_heads": 10**6},
        {"fresh": True, "num_layers": 2, "intermediate_size": 10**9},
        {"num_layers": 49},
        {"layers": [0, 10**9]},
        {"layers": list(range(49))},
    ],
)
def test_student_shapes_are_bounded(student):
    with pytest.raises(ValueError):
        StudentSpec.model_validate(student)


@pytest.mark.parametrize("path", ["models/x\x00y", "a\nb", "tab\there", "del\x7f", "", "x" * 501])
def test_model_paths_refuse_control_characters_and_unbounded_length(path):
    with pytest.raises(ValueError, match="checkpoint"):
        StudentSpec.model_validate({"checkpoint": path})
    with pytest.raises(ConfigError, match="mlm_model"):
        KDConfig.from_dict({"augmentation": {"mlm_model": path}})
    with pytest.raises(ConfigError, match="translation_models"):
        KDConfig.from_dict({"augmentation": {"translation_models": ["ok", path]}})
