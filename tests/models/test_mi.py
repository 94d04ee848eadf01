"""MI-α (Poole et al. 2019) against direct formulas, numerical safety, and a known-MI estimate."""

import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp

from models.losses import MIAlphaLoss, build_intermediate_loss, loo_log_mean_exp, mi_lower_bound


def _scores(b=6, scale=1.0, seed=0):
    rng = np.random.default_rng(seed)
    f = rng.normal(size=(b, b)) * scale
    f[np.arange(b), np.arange(b)] += 2.0 * scale  # joint pairs score higher, as after training
    return f, rng.normal(size=b)


def _bound(f, baseline, alpha):
    return mi_lower_bound(torch.tensor(f), torch.tensor(baseline), alpha).item()


def _spec_formula(f, baseline, alpha):
    """Spec §4 written out pair by pair in float64."""
    b = len(f)

    def m(i, j):
        return logsumexp([f[i, k] for k in range(b) if k != j]) - math.log(b - 1)

    def a(i, j):
        terms = []
        if alpha > 0:
            terms.append(math.log(alpha) + m(i, j))
        if alpha < 1:
            terms.append(math.log(1 - alpha) + baseline[i])
        return logsumexp(terms)

    offdiag = [(i, j) for i in range(b) for j in range(b) if i != j]
    joint = np.mean([f[i, i] - a(i, j) for i, j in offdiag])
    marginal = np.mean([math.exp(f[i, j] - a(i, i)) for i, j in offdiag])
    return 1 + joint - marginal


def test_alpha_one_is_leave_one_out_infonce():
    f, baseline = _scores()
    b = len(f)
    # The marginal term is exactly 1 at alpha = 1, so the bound is the LOO InfoNCE average.
    expected = np.mean(
        [
            f[i, i] - np.log(np.mean([np.exp(f[i, k]) for k in range(b) if k != j]))
            for i in range(b)
            for j in range(b)
            if j != i
        ]
    )
    assert _bound(f, baseline, 1.0) == pytest.approx(expected, rel=1e-9)
    assert _bound(f, baseline + 50.0, 1.0) == pytest.approx(expected, rel=1e-9)  # baseline unused


def test_alpha_zero_is_tuba():
    f, baseline = _scores()
    b = len(f)
    joint = np.mean([f[i, i] - baseline[i] for i in range(b)])  # E_p[f - b]
    marginal = np.mean([np.exp(f[i, j] - baseline[i]) for i in range(b) for j in range(b) if i != j])
    assert _bound(f, baseline, 0.0) == pytest.approx(1 + joint - marginal, rel=1e-9)


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.5, 0.7, 0.9, 1.0])
def test_matches_spec_formula(alpha):
    f, baseline = _scores(b=5, seed=3)
    assert _bound(f, baseline, alpha) == pytest.approx(_spec_formula(f, baseline, alpha), rel=1e-9, abs=1e-12)


def test_float32_matches_float64():
    f, baseline = _scores(b=8)
    got = mi_lower_bound(
        torch.tensor(f, dtype=torch.float32), torch.tensor(baseline, dtype=torch.float32), 0.9
    )
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(_spec_formula(f, baseline, 0.9), rel=1e-5)


@pytest.mark.parametrize("scale", [1.0, 1e3, 1e4])
def test_loo_log_mean_exp_is_stable(scale):
    f, _ = _scores(b=7, scale=scale, seed=2)
    f[3, 5] = f[3].max() + 80.0 * scale  # one entry that dominates its row by far
    got = loo_log_mean_exp(torch.tensor(f, dtype=torch.float32)).double().numpy()
    b = len(f)
    expected = np.array(
        [
            [logsumexp([f[i, k] for k in range(b) if k != j]) - math.log(b - 1) for j in range(b)]
            for i in range(b)
        ]
    )
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 0.9, 1.0])
def test_no_nan_with_large_scores(alpha):
    # alpha = 0 exponentiates F - b unguarded (that is the TUBA bound), so keep it in float32 range there.
    scale = 10.0 if alpha == 0.0 else 1e3
    f, baseline = _scores(b=16, scale=scale, seed=4)
    scores = torch.tensor(f, dtype=torch.float32, requires_grad=True)
    log_b = torch.tensor(baseline * scale, dtype=torch.float32, requires_grad=True)
    value = mi_lower_bound(scores, log_b, alpha)
    value.backward()
    assert torch.isfinite(value)
    assert torch.isfinite(scores.grad).all()
    if alpha == 1.0:
        assert log_b.grad is None  # the baseline drops out of the bound
    else:
        assert torch.isfinite(log_b.grad).all()


def test_bad_inputs():
    with pytest.raises(ValueError, match="batch size must be >= 2"):
        mi_lower_bound(torch.zeros(1, 1), torch.zeros(1), 0.5)
    with pytest.raises(ValueError, match="square"):
        mi_lower_bound(torch.zeros(3, 4), torch.zeros(3), 0.5)
    with pytest.raises(ValueError, match="log_baseline"):
        mi_lower_bound(torch.zeros(3, 3), torch.zeros(4), 0.5)
    with pytest.raises(ValueError, match="alpha"):
        mi_lower_bound(torch.zeros(3, 3), torch.zeros(3), -0.1)
    with pytest.raises(ValueError, match="batch size >= 2"):
        build_intermediate_loss("mi", 4, 4, alpha=0.9)(
            torch.randn(1, 3, 4), torch.randn(1, 3, 4), torch.ones(1, 3)
        )


def test_module_reads_cls_and_pairs_rows_with_teacher_baseline():
    torch.manual_seed(0)
    loss = build_intermediate_loss("mi", 4, 6, alpha=0.7)
    hs, ht, mask = torch.randn(5, 3, 4), torch.randn(5, 3, 6), torch.ones(5, 3)
    value = loss(hs, ht, mask)
    changed = hs.clone(), ht.clone()
    changed[0][:, 1:] += 5.0
    changed[1][:, 1:] -= 5.0
    assert loss(*changed, mask).item() == pytest.approx(value.item(), rel=1e-6)  # position 0 only
    with torch.no_grad():  # rows = teacher samples y_i, columns = student samples x_j
        g, h = loss.student_critic(hs[:, 0]).numpy(), loss.teacher_critic(ht[:, 0]).numpy()
        log_b = loss.baseline(ht[:, 0]).squeeze(-1).numpy()
    f = np.array([[h[i] @ g[j] for j in range(5)] for i in range(5)], dtype=np.float64)
    assert value.item() == pytest.approx(-_spec_formula(f, log_b.astype(np.float64), 0.7), rel=1e-4)


def test_special_cases():
    infonce, tuba, nwj = (build_intermediate_loss(k, 4, 4) for k in ("infonce", "tuba", "nwj"))
    assert (infonce.alpha, infonce.baseline) == (1.0, None)
    assert tuba.alpha == 0.0 and tuba.baseline is not None
    assert nwj.alpha == 0.0 and nwj.baseline is None
    y = torch.randn(3, 4)
    assert torch.all(nwj.log_baseline(y) == 1.0)
    # NWJ = E_p[f] - E_q[exp f] / e, from the module's own critic.
    torch.manual_seed(1)
    hs, ht = torch.randn(6, 2, 4), torch.randn(6, 2, 4)
    with torch.no_grad():
        f = (nwj.teacher_critic(ht[:, 0]) @ nwj.student_critic(hs[:, 0]).T).double().numpy()
        value = nwj(hs, ht, torch.ones(6, 2)).item()
    expected = np.mean(np.diag(f)) - np.mean(np.exp(f[~np.eye(6, dtype=bool)])) / math.e
    assert -value == pytest.approx(expected, rel=1e-5)


def _correlated_gaussians(n, dim, rho, gen):
    x = torch.randn(n, dim, generator=gen)
    y = rho * x + math.sqrt(1 - rho**2) * torch.randn(n, dim, generator=gen)
    return x[:, None], y[:, None]  # (n, 1, dim): position 0 is the "[CLS]"


@pytest.mark.parametrize("alpha", [0.5, 0.9])
def test_estimates_known_mi_from_below(alpha):
    torch.set_num_threads(1)
    dim, mi_per_dim = 5, 0.3
    rho = math.sqrt(1 - math.exp(-2 * mi_per_dim))
    true_mi = -0.5 * dim * math.log(1 - rho**2)  # 1.5 nats, well under log(256)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    loss = MIAlphaLoss(dim, dim, alpha)
    opt = torch.optim.Adam(loss.parameters(), lr=1e-3)
    for _ in range(200):
        x, y = _correlated_gaussians(256, dim, rho, gen)
        opt.zero_grad()
        loss(x, y, torch.ones(256, 1)).backward()
        opt.step()
    with torch.no_grad():
        x, y = _correlated_gaussians(2048, dim, rho, gen)
        estimate = -loss(x, y, torch.ones(2048, 1)).item()
    assert 0.85 * true_mi <= estimate <= true_mi + 0.03
