"""The KD training loop: resume determinism, teacher cache equivalence, every pipeline trains."""

import itertools

import pytest
import torch

from models.config import KDConfig
from models.errors import Cancelled
from tests.models.tiny import make_trainer, polarity_examples


@pytest.fixture(scope="module")
def data():
    return polarity_examples(48)


def cfg_of(**sections) -> KDConfig:
    base = {"training": {"epochs": 2, "batch_size": 8, "max_length": 24, "seed": 3, "learning_rate": 1e-3}}
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value}
    return KDConfig.from_dict(base)


def weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_resume_gives_the_same_final_weights(data, tmp_path):
    cfg = cfg_of(intermediate={"loss": "mi", "alpha": 0.9}, mixup={"enabled": True})
    full = make_trainer(cfg, tmp_path / "full")
    full.fit(*data)
    calls = {"n": 0}

    def stop_at_step_4():
        calls["n"] += 1
        return calls["n"] == 4

    interrupted = make_trainer(cfg, tmp_path / "resumed", should_stop=stop_at_step_4)
    with pytest.raises(Cancelled):
        interrupted.fit(*data)
    resumed = make_trainer(cfg, tmp_path / "resumed")
    result = resumed.fit(*data, resume=True)
    a, b = weights(full.student), weights(resumed.student)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)
    assert result.steps == 12  # 48 examples / batch 8 * 2 epochs


def test_teacher_cache_matches_on_the_fly_teacher(data, tmp_path):
    final = {}
    for cached in (True, False):
        cfg = cfg_of(intermediate={"loss": "mse", "strategy": "skip"}, training={"cache_teacher": cached})
        trainer = make_trainer(cfg, tmp_path / str(cached))
        trainer.fit(*data)
        final[cached] = weights(trainer.student)
        assert bool(trainer.cache_stats.get("enabled")) == cached
    for key in final[True]:
        torch.testing.assert_close(final[True][key], final[False][key], rtol=1e-4, atol=1e-5, msg=key)


def test_teacher_outputs_are_shared_between_runs(data, tmp_path):
    """The second run loads the first run's teacher outputs and ends with the same weights; another
    layer set or another train set gets its own file."""
    shared = tmp_path / "teacher_outputs"
    cfg = cfg_of(intermediate={"loss": "mse", "strategy": "skip"})
    first = make_trainer(cfg, tmp_path / "a", shared=shared)
    first.fit(*data)
    second = make_trainer(cfg, tmp_path / "b", shared=shared)
    second.fit(*data)
    assert (first.cache_stats["shared"], second.cache_stats["shared"]) == ("saved", "loaded")
    a, b = weights(first.student), weights(second.student)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    assert len(list(shared.glob("*.safetensors"))) == 1
    other_layers = make_trainer(
        cfg_of(intermediate={"loss": "mse", "strategy": "last"}), tmp_path / "c", shared=shared
    )
    other_layers.fit(*data)
    fewer = make_trainer(cfg, tmp_path / "d", shared=shared)
    fewer.fit(data[0][:40], data[1])
    assert other_layers.cache_stats["shared"] == fewer.cache_stats["shared"] == "saved"
    files = sorted(shared.glob("*.safetensors"))
    assert len(files) == 3
    for f in files:  # a truncated file is a miss: recomputed and replaced, the run unaffected
        f.write_bytes(f.read_bytes()[:100])
    third = make_trainer(cfg, tmp_path / "e", shared=shared)
    third.fit(*data)
    assert third.cache_stats["shared"] == "saved"
    for key, value in weights(third.student).items():
        torch.testing.assert_close(value, a[key], rtol=0, atol=0, msg=key)


def test_no_teacher_trains_on_hard_labels(data, tmp_path):
    cfg = cfg_of(weights={"kd": 0, "intermediate": 0, "hard": 1})
    trainer = make_trainer(cfg, tmp_path, teacher=False)
    result = trainer.fit(*data)
    assert set(result.history["train"][0]) >= {"hard", "loss"}
    assert 0.0 <= result.best_metrics["accuracy"] <= 1.0


GRID = list(
    itertools.product(
        ["none", "mse", "cos", "ce", "pkd", "att_mse", "mi", "infonce", "tuba", "nwj"],
        ["skip", "last", "emd"],
        [False, True],
    )
)


@pytest.mark.parametrize("loss, strategy, mixup", GRID)
def test_every_pipeline_trains_two_steps(data, tmp_path, loss, strategy, mixup):
    cfg = cfg_of(
        intermediate={"loss": loss, "strategy": strategy, **({"alpha": 0.5} if loss == "mi" else {})},
        mixup={"enabled": mixup},
        augmentation={"pipeline": ["random"], "aug_p": 0.2},
        training={"max_steps": 2, "epochs": 1},
    )
    trainer = make_trainer(cfg, tmp_path)
    before = weights(trainer.student)
    result = trainer.fit(*data)
    assert result.steps == 2
    last = result.history["train"][-1]
    assert torch.isfinite(torch.tensor(last["loss"]))
    if loss != "none":
        assert "inter" in last
    changed = [k for k, v in weights(trainer.student).items() if not torch.equal(v, before[k])]
    assert changed, "no student weight changed"


def test_emd_training_differs_from_kd_only(data, tmp_path):
    """The reference code's EMD runs silently fell back to KD-only; ours must not."""
    results = {}
    for loss in ("none", "mse"):
        cfg = cfg_of(intermediate={"loss": loss, "strategy": "emd"}, training={"max_steps": 3, "epochs": 1})
        trainer = make_trainer(cfg, tmp_path / loss)
        trainer.fit(*data)
        results[loss] = weights(trainer.student)
        if loss == "mse":
            flow = trainer.step_fn.matcher.last_flow
            assert flow is not None and abs(float(flow.sum()) - 1.0) < 1e-5
    diff = max((results["none"][k] - results["mse"][k]).abs().max().item() for k in results["none"])
    assert diff > 1e-4
