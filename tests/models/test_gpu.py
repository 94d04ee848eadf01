"""GPU checks (opt in with ``-m gpu``): bf16 autocast training and the device-resident teacher cache."""

import pytest
import torch

from models.config import KDConfig
from tests.models.tiny import make_trainer, polarity_examples

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("inter", [{"loss": "mi", "alpha": 0.9}, {"loss": "mse", "strategy": "emd"}])
def test_bf16_kd_trains_on_cuda(tmp_path, inter):
    cfg = KDConfig.from_dict(
        {
            "intermediate": inter,
            "mixup": {"enabled": True},
            "training": {"epochs": 1, "batch_size": 8, "max_length": 24, "bf16": True},
        }
    )
    trainer = make_trainer(cfg, tmp_path, device="cuda")
    result = trainer.fit(*polarity_examples(32))
    assert next(trainer.student.parameters()).is_cuda
    assert torch.isfinite(torch.tensor(result.history["train"][-1]["loss"]))


def test_teacher_cache_lives_on_the_gpu(tmp_path):
    cfg = KDConfig.from_dict(
        {"intermediate": {"loss": "mse"}, "training": {"epochs": 1, "batch_size": 8, "max_length": 24}}
    )
    trainer = make_trainer(cfg, tmp_path, device="cuda")
    trainer.fit(*polarity_examples(32))
    assert trainer.cache is not None and trainer.cache.logits.is_cuda
