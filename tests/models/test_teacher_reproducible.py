"""Teacher fine-tuning is reproducible: one seed (and thread count) gives one teacher, bit for bit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from models.config import DistillSpec, TeacherTrainingConfig
from models.data import load_builtin
from models.pipeline import prepare_teacher
from tests.models.tiny import minilm_dir, tokenizer


@pytest.fixture(scope="module")
def headless_teacher(tmp_path_factory) -> Path:
    """A tiny BERT encoder without a classification head (fine-tuning must draw a new one)."""
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny_base")
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=64,
    )  # fmt: skip
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tokenizer().save_pretrained(folder)
    assert minilm_dir()  # the tokenizer came from the installed MiniLM package
    return folder


def _fine_tune(base: Path, cache: Path, seed: int) -> tuple[dict[str, torch.Tensor], dict]:
    from safetensors.torch import load_file

    spec = DistillSpec(
        dataset="rt_polarity_200",
        teacher=str(base),
        teacher_training=TeacherTrainingConfig(epochs=1, batch_size=16, max_length=16, seed=seed),
    )
    dataset = load_builtin("rt_polarity_200", size=48, seed=0)
    folder, info = prepare_teacher(spec, dataset, cache_dir=cache, device=torch.device("cpu"))
    assert info["fine_tuned"] and not info["cached"]
    return load_file(folder / "model.safetensors"), json.loads((folder / "teacher_info.json").read_text())


def test_same_seed_gives_identical_teacher_weights(headless_teacher, tmp_path) -> None:
    torch.manual_seed(1234)  # the global RNG state differs before each fine-tune, as in a worker
    first, info = _fine_tune(headless_teacher, tmp_path / "a", seed=5)
    torch.rand(1000)
    second, _ = _fine_tune(headless_teacher, tmp_path / "b", seed=5)
    assert first.keys() == second.keys()
    assert "classifier.weight" in first
    for name in first:
        assert torch.equal(first[name], second[name]), name
    assert info["seed"] == 5 and info["torch_threads"] == torch.get_num_threads()

    other, _ = _fine_tune(headless_teacher, tmp_path / "c", seed=6)
    assert not torch.equal(first["classifier.weight"], other["classifier.weight"])
