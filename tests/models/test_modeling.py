"""Building teachers and students: layer derivation, fresh configs, tokenizer identity, task heads."""

import json

import pytest
import torch
from transformers import BertTokenizerFast

from models.config import KDConfig, StudentSpec, check_compatible
from models.errors import AssetMissingError, ConfigError, IncompatibleModelsError
from models.modeling import (
    build_student,
    derive_student,
    describe_model,
    evenly_spaced_layers,
    has_task_head,
    resolve_model_path,
    tokenizer_id,
)
from tests.models.tiny import tiny_bert, tokenizer


def test_evenly_spaced_layers_follow_distilbert():
    assert evenly_spaced_layers(12, 6) == [0, 2, 4, 6, 8, 10]
    assert evenly_spaced_layers(6, 3) == [0, 2, 4]
    assert evenly_spaced_layers(6, 2) == [0, 3]
    with pytest.raises(ConfigError, match="1..6"):
        evenly_spaced_layers(6, 7)


def test_derived_student_copies_embeddings_and_chosen_layers():
    teacher = tiny_bert(4, hidden=32, seed=5)
    student = derive_student(teacher, [1, 3])
    assert student.config.num_hidden_layers == 2
    t_layers, s_layers = teacher.bert.encoder.layer, student.bert.encoder.layer
    for s_idx, t_idx in enumerate([1, 3]):
        for (name, p_s), (_, p_t) in zip(
            s_layers[s_idx].named_parameters(), t_layers[t_idx].named_parameters(), strict=True
        ):
            assert torch.equal(p_s, p_t), name
    assert torch.equal(
        student.bert.embeddings.word_embeddings.weight, teacher.bert.embeddings.word_embeddings.weight
    )
    assert torch.equal(student.classifier.weight, teacher.classifier.weight)
    with pytest.raises(ConfigError, match="out of range for a 4-layer teacher"):
        derive_student(teacher, [0, 4])


def test_fresh_student_has_the_requested_size():
    teacher = tiny_bert(4, hidden=32)
    bundle = build_student(
        StudentSpec(fresh=True, num_layers=1, hidden_size=16, num_heads=2, intermediate_size=32),
        teacher,
        tokenizer(),
        ("neg", "pos"),
        "classification",
    )
    cfg = bundle.model.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads) == (1, 16, 2)
    with pytest.raises(ConfigError, match="not divisible"):
        build_student(
            StudentSpec(fresh=True, num_layers=1, hidden_size=30),
            teacher,
            tokenizer(),
            ("neg", "pos"),
            "classification",
        )


def test_tokenizer_mismatch_refuses_token_level_losses(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "film"]))
    other = BertTokenizerFast(vocab_file=str(vocab))
    assert tokenizer_id(other) != tokenizer_id(tokenizer())
    teacher = describe_model("t", tiny_bert(4), tokenizer())
    student = describe_model("s", tiny_bert(2), other)
    with pytest.raises(IncompatibleModelsError, match="different tokenizers"):
        check_compatible(
            KDConfig.from_dict({"intermediate": {"loss": "cos"}}),
            task_kind="classification",
            teacher=teacher,
            student=student,
        )
    # logit-level KD and [CLS]-level losses are allowed across vocabularies
    for inter in ({"loss": "none"}, {"loss": "pkd"}, {"loss": "mi", "alpha": 0.9}):
        check_compatible(
            KDConfig.from_dict({"intermediate": inter}),
            task_kind="classification",
            teacher=teacher,
            student=student,
        )


def test_task_head_detection(tmp_path):
    model = tiny_bert(1, num_labels=2)
    model.config.id2label = {0: "neg", 1: "pos"}
    model.save_pretrained(tmp_path)
    assert has_task_head(tmp_path, ("neg", "pos"), "classification")
    assert not has_task_head(tmp_path, ("a", "b"), "classification")
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["architectures"] = ["BertModel"]
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    assert not has_task_head(tmp_path, ("neg", "pos"), "classification")


def test_unknown_teacher_names_the_built_ins(tmp_path):
    with pytest.raises(AssetMissingError, match="minilm-l6"):
        resolve_model_path(str(tmp_path / "nowhere"))
