"""GPU checks (opt in with ``-m gpu``): bf16 autocast training and the device-resident teacher cache."""

import pytest
import torch

from models.config import KDConfig
from models.trainer import KDTrainer
from tests.models.tiny import polarity_examples, tiny_bert, tokenizer

pytestmark = pytest.mark.gpu


def cuda_trainer(cfg: KDConfig, workdir) -> KDTrainer:
    """A tiny 4-layer teacher -> 2-layer student trainer on the GPU."""
    return KDTrainer(
        student=tiny_bert(2, seed=2),
        teacher=tiny_bert(4, hidden=48, seed=1),
        config=cfg,
        task_kind="classification",
        label_names=("neg", "pos"),
        tokenizer=tokenizer(),
        workdir=workdir,
        device="cuda",
    )


@pytest.mark.parametrize("inter", [{"loss": "mi", "alpha": 0.9}, {"loss": "mse", "strategy": "emd"}])
def test_bf16_kd_trains_on_cuda(tmp_path, inter):
    cfg = KDConfig.from_dict(
        {
            "intermediate": inter,
            "mixup": {"enabled": True},
            "training": {"epochs": 1, "batch_size": 8, "max_length": 24, "bf16": True},
        }
    )
    trainer = cuda_trainer(cfg, tmp_path)
    result = trainer.fit(*polarity_examples(32))
    assert next(trainer.student.parameters()).is_cuda
    assert torch.isfinite(torch.tensor(result.history["train"][-1]["loss"]))


def test_teacher_cache_lives_on_the_gpu(tmp_path):
    cfg = KDConfig.from_dict(
        {"intermediate": {"loss": "mse"}, "training": {"epochs": 1, "batch_size": 8, "max_length": 24}}
    )
    trainer = cuda_trainer(cfg, tmp_path)
    trainer.fit(*polarity_examples(32))
    assert trainer.cache is not None and trainer.cache.logits.is_cuda
