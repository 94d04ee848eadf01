"""Token-, [CLS]- and attention-level intermediate losses against explicit numpy loops (spec §4)."""

import numpy as np
import pytest
import torch
from torch import nn

from models import config
from models.errors import ConfigError, IncompatibleModelsError, UnknownKeyError
from models.losses import INTERMEDIATE_LOSSES, build_intermediate_loss

B, L, D_S, D_T = 3, 5, 4, 6
MASK = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 0, 0, 0]], dtype=np.float64)


def _states(d_s=D_S, d_t=D_T, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(B, L, d_s)), rng.normal(size=(B, L, d_t))


def _t(a) -> torch.Tensor:
    return torch.tensor(np.asarray(a), dtype=torch.float32)


def _project(loss, h):
    """Apply the loss's projection in numpy (identity when it has none)."""
    if isinstance(loss.proj, nn.Identity):
        return h
    w = loss.proj.weight.detach().double().numpy()
    b = loss.proj.bias.detach().double().numpy()
    return h @ w.T + b


def _with_known_projection(kind, d_s=D_S, d_t=D_T):
    loss = build_intermediate_loss(kind, d_s, d_t)
    if isinstance(loss.proj, nn.Linear):
        # Non-trivial weights, so a wrong orientation or a missing bias would show.
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            loss.proj.weight.copy_(torch.randn(d_t, d_s, generator=g) * 0.5)
            loss.proj.bias.copy_(torch.randn(d_t, generator=g) * 0.1)
    return loss


def _log_softmax(v):
    return v - np.log(np.sum(np.exp(v)))


def _expected(kind, hs, ht):
    """Per spec §4, one token at a time."""
    if kind == "pkd":
        total = 0.0
        for b in range(B):
            s, t = hs[b, 0], ht[b, 0]
            total += np.sum((s / np.linalg.norm(s) - t / np.linalg.norm(t)) ** 2)
        return total / B
    total, count = 0.0, 0
    for b in range(B):
        for i in range(L):
            if not MASK[b, i]:
                continue
            s, t = hs[b, i], ht[b, i]
            if kind == "mse":
                total += np.sum((s - t) ** 2) / len(t)
            elif kind == "cos":
                total += 1 - s @ t / (np.linalg.norm(s) * np.linalg.norm(t))
            else:  # ce
                total -= np.sum(np.exp(_log_softmax(t)) * _log_softmax(s))
            count += 1
    return total / count


def test_registry_keys_match_config():
    assert set(INTERMEDIATE_LOSSES.keys()) == set(config.INTERMEDIATE_LOSSES) - {"none"}


@pytest.mark.parametrize("kind", ["mse", "cos", "ce", "pkd"])
@pytest.mark.parametrize("d_s", [D_S, D_T])
def test_values_match_spec(kind, d_s):
    hs, ht = _states(d_s=d_s)
    loss = _with_known_projection(kind, d_s=d_s)
    expected = _expected(kind, _project(loss, hs), ht)
    got = loss(_t(hs), _t(ht), _t(MASK))
    assert got.shape == ()
    assert got.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("kind", ["mse", "cos", "ce", "pkd", "att_mse"])
def test_padded_positions_are_ignored(kind):
    if kind == "att_mse":
        hs, ht = _attention(seed=0), _attention(seed=1)
    else:
        hs, ht = (torch.tensor(a, dtype=torch.float32) for a in _states())
    loss = build_intermediate_loss(kind, D_S, D_T)
    before = loss(hs, ht, _t(MASK))
    pad = torch.tensor(MASK == 0)
    noisy_s, noisy_t = hs.clone(), ht.clone()
    if kind == "att_mse":  # padded query rows and padded key columns
        noisy_s[pad[:, None, :, None].expand_as(hs)] += 3.0
        noisy_t[pad[:, None, None, :].expand_as(ht)] -= 2.0
    else:
        noisy_s[pad] += 100.0
        noisy_t[pad] = -7.0
    after = loss(noisy_s, noisy_t, _t(MASK))
    assert after.item() == pytest.approx(before.item(), rel=1e-6)
    if kind != "pkd":  # pkd reads position 0 only, so the mask cannot matter there
        assert loss(noisy_s, noisy_t, torch.ones(B, L)).item() != pytest.approx(before.item(), rel=1e-3)


@pytest.mark.parametrize("kind", ["mse", "cos", "ce", "pkd"])
def test_projection_only_when_dims_differ(kind):
    same = build_intermediate_loss(kind, D_T, D_T)
    assert isinstance(same.proj, nn.Identity)
    assert sum(p.numel() for p in same.parameters()) == 0
    torch.manual_seed(0)
    differ = build_intermediate_loss(kind, 64, 256)
    assert isinstance(differ.proj, nn.Linear)
    assert differ.uses_projection
    assert tuple(differ.proj.weight.shape) == (256, 64)
    assert differ.proj.weight.std().item() == pytest.approx(0.02, rel=0.1)
    assert torch.all(differ.proj.bias == 0)


@pytest.mark.parametrize("kind", ["mi", "infonce", "tuba", "nwj"])
@pytest.mark.parametrize("dims", [(D_T, D_T), (D_S, D_T)])
def test_mi_losses_never_project(kind, dims):
    loss = build_intermediate_loss(kind, *dims, alpha=0.5 if kind == "mi" else None)
    assert not any(
        isinstance(m, nn.Linear) and m.in_features == dims[0] and m.out_features == dims[1]
        for m in loss.modules()
    )
    assert not hasattr(loss, "proj")
    assert loss.student_critic[0].in_features == dims[0]
    assert loss.teacher_critic[0].in_features == dims[1]


def _attention(heads=2, seed=0):
    """Row-stochastic maps over the real keys of each example (like a masked softmax)."""
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(B, heads, L, L, generator=g)
    scores = scores.masked_fill(_t(MASK)[:, None, None, :] == 0, float("-inf"))
    return torch.softmax(scores, dim=-1)


def test_attention_mse_value():
    s, t = _attention(seed=0), _attention(seed=1)
    sn, tn = s.double().numpy(), t.double().numpy()
    rows, total = 0, 0.0
    for b in range(B):
        for h in range(2):
            for i in range(L):
                if MASK[b, i]:
                    total += sum((sn[b, h, i, j] - tn[b, h, i, j]) ** 2 for j in range(L) if MASK[b, j])
                    rows += 1
    got = build_intermediate_loss("att_mse", D_S, D_T)(s, t, _t(MASK))
    assert got.item() == pytest.approx(total / rows, rel=1e-5)
    assert sum(p.numel() for p in build_intermediate_loss("att_mse", D_S, D_T).parameters()) == 0


def test_attention_mse_needs_equal_heads():
    loss = build_intermediate_loss("att_mse", D_S, D_T)
    with pytest.raises(IncompatibleModelsError, match=r"head counts \(student 2, teacher 4\)"):
        loss(_attention(heads=2), _attention(heads=4), _t(MASK))


def test_token_losses_need_equal_lengths_but_cls_losses_do_not():
    hs, ht = torch.randn(B, L, D_S), torch.randn(B, L + 2, D_T)
    with pytest.raises(IncompatibleModelsError, match="tokenizer"):
        build_intermediate_loss("mse", D_S, D_T)(hs, ht, _t(MASK))
    assert torch.isfinite(build_intermediate_loss("pkd", D_S, D_T)(hs, ht, _t(MASK)))
    assert torch.isfinite(build_intermediate_loss("mi", D_S, D_T, alpha=0.9)(hs, ht, _t(MASK)))


def test_wrong_hidden_size_is_named():
    with pytest.raises(ValueError, match=r"built for hidden sizes \(student 4, teacher 6\)"):
        build_intermediate_loss("cos", D_S, D_T)(torch.randn(B, L, 8), torch.randn(B, L, D_T), _t(MASK))
    with pytest.raises(ValueError, match="mask must be"):
        build_intermediate_loss("cos", D_S, D_T)(
            torch.randn(B, L, D_S), torch.randn(B, L, D_T), torch.ones(B, 2)
        )


def test_build_validates_alpha_and_key():
    with pytest.raises(ConfigError, match="takes no alpha"):
        build_intermediate_loss("mse", D_S, D_T, alpha=0.5)
    with pytest.raises(ConfigError, match="needs alpha"):
        build_intermediate_loss("mi", D_S, D_T)
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        build_intermediate_loss("mi", D_S, D_T, alpha=1.5)
    with pytest.raises(ConfigError, match="alpha=1.0"):
        build_intermediate_loss("infonce", D_S, D_T, alpha=0.5)
    assert build_intermediate_loss("infonce", D_S, D_T, alpha=1.0).alpha == 1.0
    with pytest.raises(UnknownKeyError, match="att_mse, ce, cos"):
        build_intermediate_loss("none", D_S, D_T)


@pytest.mark.parametrize("kind", ["mse", "cos", "ce", "pkd"])
def test_gradients_reach_student_and_projection(kind):
    hs, ht = (torch.tensor(a, dtype=torch.float32) for a in _states())
    hs.requires_grad_()
    loss = build_intermediate_loss(kind, D_S, D_T)
    loss(hs, ht, _t(MASK)).backward()
    assert hs.grad is not None and hs.grad.abs().sum() > 0
    assert loss.proj.weight.grad is not None and loss.proj.weight.grad.abs().sum() > 0
