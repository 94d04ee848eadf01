"""Layer mapping tables, the EMD flow and the LayerMatcher (spec §3)."""

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment, linprog

from models.errors import ConfigError, IncompatibleModelsError
from models.losses import LayerMatcher, emd_flow, layer_pairs

# (teacher, student) pairs over hidden_states indices, straight from spec §3.
TABLES = {
    ("skip", 12, 4): [(0, 0), (3, 1), (6, 2), (9, 3), (12, 4)],
    ("last", 12, 4): [(8, 0), (9, 1), (10, 2), (11, 3), (12, 4)],
    ("skip", 6, 3): [(0, 0), (2, 1), (4, 2), (6, 3)],
    ("last", 6, 3): [(3, 0), (4, 1), (5, 2), (6, 3)],
    ("skip", 6, 2): [(0, 0), (3, 1), (6, 2)],
    ("last", 6, 2): [(4, 0), (5, 1), (6, 2)],
    ("skip", 6, 4): [(0, 0), (1, 1), (3, 2), (4, 3), (6, 4)],  # k = 1.5: floor(i * k)
    ("skip", 4, 4): [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4)],
}


@pytest.mark.parametrize(("key", "pairs"), TABLES.items(), ids=[f"{s}-{t}to{n}" for s, t, n in TABLES])
def test_layer_pairs_tables(key, pairs):
    strategy, n_teacher, n_student = key
    assert layer_pairs(strategy, n_teacher, n_student) == pairs


def test_layer_pairs_refuses_bad_requests():
    with pytest.raises(IncompatibleModelsError, match="student has 6 layers and the teacher only 4"):
        layer_pairs("skip", 4, 6)
    with pytest.raises(ConfigError, match="emd"):
        layer_pairs("emd", 12, 4)
    with pytest.raises(IncompatibleModelsError, match=">= 1"):
        layer_pairs("last", 12, 0)


def test_emd_flow_marginals():
    cost = np.random.default_rng(0).random((4, 12))
    flow = emd_flow(cost)
    assert isinstance(flow, torch.Tensor) and flow.shape == (4, 12)
    assert torch.all(flow >= 0)
    assert flow.sum().item() == pytest.approx(1.0)
    np.testing.assert_allclose(flow.sum(1).numpy(), np.full(4, 1 / 4), atol=1e-12)
    np.testing.assert_allclose(flow.sum(0).numpy(), np.full(12, 1 / 12), atol=1e-12)


def test_emd_flow_is_optimal():
    rng = np.random.default_rng(1)
    square = rng.random((5, 5))
    rows, cols = linear_sum_assignment(square)  # uniform square marginals: an assignment / n
    assert (emd_flow(square).numpy() * square).sum() == pytest.approx(square[rows, cols].sum() / 5)
    rect = rng.random((3, 7))
    assert (emd_flow(rect).numpy() * rect).sum() == pytest.approx(_lp_emd(rect)[1])


def test_emd_flow_detaches_and_keeps_device():
    cost = torch.rand(2, 3, requires_grad=True)
    flow = emd_flow(cost)
    assert not flow.requires_grad and flow.dtype == torch.float32 and flow.device == cost.device
    with pytest.raises(ValueError, match="NaN or infinite"):
        emd_flow(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="shape"):
        emd_flow(np.zeros(3))


def _lp_emd(cost):
    """Independent EMD via scipy's LP solver: (flow, optimal cost)."""
    n_s, n_t = cost.shape
    rows = np.kron(np.eye(n_s), np.ones(n_t))
    cols = np.kron(np.ones(n_s), np.eye(n_t))
    rhs = np.concatenate([np.full(n_s, 1 / n_s), np.full(n_t, 1 / n_t)])
    res = linprog(cost.ravel(), A_eq=np.vstack([rows, cols]), b_eq=rhs, bounds=(0, None), method="highs")
    return res.x.reshape(n_s, n_t), res.fun


B, L = 3, 4
MASK = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]], dtype=torch.float32)


def _hidden(n_layers, dim, seed, grad=False):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(B, L, dim, generator=g).requires_grad_(grad) for _ in range(n_layers + 1))


def _np_mse(hs, ht):
    m = MASK.numpy()[..., None]
    return float((m * (hs.detach().numpy() - ht.detach().numpy()) ** 2).sum() / (m.sum() * ht.shape[-1]))


def test_skip_sum_matches_per_pair_losses():
    student, teacher = _hidden(2, 8, seed=0), _hidden(6, 8, seed=1)
    matcher = LayerMatcher.from_strategy(
        "mse", "skip", student_dim=8, teacher_dim=8, n_student_layers=2, n_teacher_layers=6
    )
    assert matcher.pairs == [(0, 0), (3, 1), (6, 2)]
    expected = sum(_np_mse(student[s], teacher[t]) for t, s in [(0, 0), (3, 1), (6, 2)])
    assert matcher(student, teacher, MASK).item() == pytest.approx(expected, rel=1e-5)


def test_emd_loss_matches_independent_lp():
    student, teacher = _hidden(2, 8, seed=2), _hidden(5, 8, seed=3)
    matcher = LayerMatcher.from_strategy(
        "mse", "emd", student_dim=8, teacher_dim=8, n_student_layers=2, n_teacher_layers=5
    )
    cost = np.array([[_np_mse(student[s], teacher[t]) for t in range(1, 6)] for s in range(1, 3)])
    flow, emd_value = _lp_emd(cost)
    expected = emd_value + _np_mse(student[0], teacher[0])  # plus the embeddings matched 1:1
    got = matcher(student, teacher, MASK)
    assert got.item() == pytest.approx(expected, rel=1e-5)
    assert got.item() > 0  # EMD really runs (the reference silently fell back to KD-only)
    np.testing.assert_allclose(matcher.last_flow.numpy(), flow, atol=1e-6)


@pytest.mark.parametrize("strategy", ["skip", "last", "emd"])
@pytest.mark.parametrize(("kind", "alpha"), [("mse", None), ("pkd", None), ("mi", 0.9), ("cos", None)])
def test_gradients_reach_student_and_trainables_not_teacher(strategy, kind, alpha):
    torch.manual_seed(0)
    student, teacher = _hidden(2, 8, seed=4, grad=True), _hidden(4, 12, seed=5, grad=True)
    matcher = LayerMatcher.from_strategy(
        kind, strategy, student_dim=8, teacher_dim=12, alpha=alpha, n_student_layers=2, n_teacher_layers=4
    )
    matcher(student, teacher, MASK).backward()
    matched = {s for _, s in matcher.pairs} | ({1, 2} if strategy == "emd" else set())
    for s in matched:
        assert student[s].grad is not None and student[s].grad.abs().sum() > 0, f"student layer {s}"
    assert all(h.grad is None for h in teacher)
    losses = [*matcher.pair_losses, *matcher.emd_losses]
    assert len(losses) == len(matcher.pairs) + (2 if strategy == "emd" else 0)
    for loss in losses:
        trainable = loss.proj.weight if kind != "mi" else loss.student_critic[0].weight
        assert trainable.grad is not None and trainable.grad.abs().sum() > 0
        if kind == "mi":
            assert loss.teacher_critic[0].weight.grad.abs().sum() > 0
            assert loss.baseline[0].weight.grad.abs().sum() > 0


def test_each_pair_owns_its_projection():
    matcher = LayerMatcher.from_strategy(
        "mse", "skip", student_dim=8, teacher_dim=12, n_student_layers=2, n_teacher_layers=4
    )
    projections = [loss.proj for loss in matcher.pair_losses]
    assert len({id(p) for p in projections}) == len(projections) == 3
    n_params = sum(p.numel() for p in matcher.parameters())
    assert n_params == 3 * (8 * 12 + 12)


def _attentions(n_layers, heads, seed):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.softmax(torch.randn(B, heads, L, L, generator=g), -1) for _ in range(n_layers))


def test_attention_matcher_uses_attention_maps():
    matcher = LayerMatcher.from_strategy(
        "att_mse", "skip", student_dim=8, teacher_dim=12, n_student_layers=2, n_teacher_layers=4
    )
    assert matcher.pairs == [(2, 1), (4, 2)]  # no attention map for the embeddings
    s_att, t_att = _attentions(2, 3, seed=0), _attentions(4, 3, seed=1)
    loss = matcher(_hidden(2, 8, 0), _hidden(4, 12, 1), MASK, s_att, t_att)
    expected = sum(
        f(s_att[s - 1], t_att[t - 1], MASK)
        for (t, s), f in zip(matcher.pairs, matcher.pair_losses, strict=True)
    )
    assert loss.item() == pytest.approx(expected.item()) and loss.item() > 0
    with pytest.raises(ValueError, match="output_attentions"):
        matcher(_hidden(2, 8, 0), _hidden(4, 12, 1), MASK)
    with pytest.raises(IncompatibleModelsError, match="head counts"):
        matcher(_hidden(2, 8, 0), _hidden(4, 12, 1), MASK, s_att, _attentions(4, 6, seed=1))
    emd = LayerMatcher.from_strategy(
        "att_mse", "emd", student_dim=8, teacher_dim=12, n_student_layers=2, n_teacher_layers=4
    )
    assert emd.pairs == [] and torch.isfinite(emd(None, None, MASK, s_att, t_att))


def test_matcher_validates_pairs_counts_and_mask():
    kwargs = {"student_dim": 8, "teacher_dim": 8, "n_student_layers": 2, "n_teacher_layers": 4}
    with pytest.raises(IncompatibleModelsError, match="teacher with 4 layers and a student with 2 layers"):
        LayerMatcher("mse", [(5, 1)], **kwargs)
    with pytest.raises(IncompatibleModelsError, match="student has 6 layers and the teacher only 4"):
        LayerMatcher.from_strategy(
            "mse", "last", student_dim=8, teacher_dim=8, n_student_layers=6, n_teacher_layers=4
        )
    with pytest.raises(ConfigError, match="unknown intermediate strategy"):
        LayerMatcher("mse", [(0, 0)], strategy="random", **kwargs)
    with pytest.raises(ConfigError, match="embeddings"):
        LayerMatcher("att_mse", [(0, 0)], **kwargs)
    matcher = LayerMatcher("mse", [(4, 2)], **kwargs)
    with pytest.raises(IncompatibleModelsError, match="expected 5 teacher hidden states, got 3"):
        matcher(_hidden(2, 8, 0), _hidden(2, 8, 1), MASK)
    left_padded = MASK.flip(1)
    with pytest.raises(ValueError, match=r"position 0 \(\[CLS\]\) is padding"):
        matcher(_hidden(2, 8, 0), _hidden(4, 8, 1), left_padded)


def test_unread_teacher_layers_may_be_none():
    student, teacher = _hidden(2, 8, seed=0), list(_hidden(4, 8, seed=1))
    matcher = LayerMatcher.from_strategy(
        "mse", "skip", student_dim=8, teacher_dim=8, n_student_layers=2, n_teacher_layers=4
    )
    full = matcher(student, teacher, MASK)
    teacher[1] = teacher[3] = None  # skip 4 -> 2 reads teacher layers 0, 2, 4
    assert matcher(student, teacher, MASK).item() == pytest.approx(full.item())
    teacher[2] = None
    with pytest.raises(ValueError, match=r"teacher layers \[2\] are needed"):
        matcher(student, teacher, MASK)


def test_emd_allows_student_deeper_than_teacher():
    matcher = LayerMatcher.from_strategy(
        "cos", "emd", student_dim=8, teacher_dim=8, n_student_layers=3, n_teacher_layers=2
    )
    assert torch.isfinite(matcher(_hidden(3, 8, 0), _hidden(2, 8, 1), MASK))
    assert matcher.last_flow.shape == (3, 2)
