"""MI-α: the interpolated mutual-information lower bound (spec §4).

Poole, Ozair, van den Oord, Alemi, Tucker, "On Variational Bounds of Mutual Information"
(ICML 2019), eq. (11). For a batch of B joint pairs and a critic matrix ``F`` (row i holds
the scores of row sample i against every column sample; the diagonal is the joint pairs):

- ``m_ij = log( 1/(B−1) · Σ_{l≠j} exp F_il )``   leave-one-out log-mean-exp of row i;
- ``A_ij = log( α·exp(m_ij) + (1−α)·exp(b_i) )`` with ``b_i`` the learned log-baseline of row i;
- ``J = mean_{i≠j}(F_ii − A_ij)``,  ``M = mean_{i≠j} exp(F_ij − A_ii)``;
- ``I_α = 1 + J − M``  and the loss is ``−I_α``.

α = 1 is the leave-one-out InfoNCE bound (low variance, capped near log B); α = 0 is TUBA with
the learned baseline; NWJ is TUBA with the fixed log-baseline b ≡ 1. The Distiller reference
docstring states this direction backwards.

Orientation: the bound needs the baseline to be a function of the row's own sample (Poole's
``a(y)`` next to ``m(y; x_1..K)``). The spec writes ``F_ij = g(x_i)ᵀh(y_j)`` (x = student) yet
gives the row the teacher baseline ``b(y_i)``; we keep the spec's critic and baseline networks and
index rows by the teacher sample, ``F_ij = g(x_j)ᵀh(y_i)``, so the row sample and its baseline
agree as in the paper. ``mi_lower_bound`` itself is orientation-free.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from models.errors import ConfigError
from models.losses.base import IntermediateLoss, register_loss

CRITIC_HIDDEN = 128
CRITIC_EMBED = 64


def loo_log_mean_exp(scores: Tensor) -> Tensor:
    """Leave-one-out log-mean-exp: ``out[i, j] = log(1/(B−1) Σ_{l≠j} exp scores[i, l])``.

    Stable for large scores without a ``(B, B, B)`` tensor: in the column of the row maximum the
    result is a plain logsumexp over the rest of the row; elsewhere the maximum stays in the sum,
    so subtracting ``exp(F_ij − max) ≤ 1`` from a sum ``≥ 1 + exp(F_ij − max)`` cannot cancel.

    Args:
        scores: ``(B, B)`` with B ≥ 2.

    Returns:
        ``(B, B)`` tensor.
    """
    b = scores.shape[0]
    top, top_idx = scores.max(dim=1, keepdim=True)  # (B, 1)
    is_top = torch.zeros_like(scores, dtype=torch.bool).scatter_(1, top_idx, True)
    rest = scores.masked_fill(is_top, float("-inf"))  # row without its maximum
    without_top = torch.logsumexp(rest, dim=1, keepdim=True)  # (B, 1): LOO value in the max's column
    shifted = torch.exp(rest - top)  # (B, B), 0 at the max
    others = (shifted.sum(dim=1, keepdim=True) - shifted).clamp_min(0.0)  # rounding can dip below 0
    with_top = top + torch.log1p(others)
    return torch.where(is_top, without_top, with_top) - math.log(b - 1)


def mi_lower_bound(scores: Tensor, log_baseline: Tensor, alpha: float) -> Tensor:
    """The interpolated bound I_α of Poole et al. 2019 for a critic score matrix (see module doc).

    Args:
        scores: ``(B, B)`` critic values; ``scores[i, i]`` are the joint (positive) pairs.
        log_baseline: ``(B,)`` log-baseline ``b_i`` of row sample i (unused when α = 1).
        alpha: Interpolation weight in [0, 1]; α = 0 and α = 1 are handled exactly (no log 0).

    Returns:
        Scalar tensor I_α (float32 or float64), a lower bound on the mutual information in nats.

    Raises:
        ValueError: Bad shapes, B < 2, or α outside [0, 1].
    """
    if scores.dim() != 2 or scores.shape[0] != scores.shape[1]:
        raise ValueError(f"scores must be a square (B, B) matrix, got {tuple(scores.shape)}")
    b = scores.shape[0]
    if b < 2:
        raise ValueError(f"MI bounds contrast examples within a batch: batch size must be >= 2, got {b}")
    if tuple(log_baseline.shape) != (b,):
        raise ValueError(f"log_baseline must have shape ({b},), got {tuple(log_baseline.shape)}")
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if scores.dtype not in (torch.float32, torch.float64):
        scores = scores.float()  # bf16 exp/logsumexp is too coarse for the bound
    baseline = log_baseline.to(scores.dtype)[:, None].expand(b, b)
    if alpha == 0.0:
        interp = baseline
    elif alpha == 1.0:
        interp = loo_log_mean_exp(scores)
    else:
        interp = torch.logaddexp(loo_log_mean_exp(scores) + math.log(alpha), baseline + math.log1p(-alpha))
    off_diag = ~torch.eye(b, dtype=torch.bool, device=scores.device)
    joint = (scores.diagonal()[:, None] - interp)[off_diag].mean()  # J
    log_marginal = torch.logsumexp((scores - interp.diagonal()[:, None])[off_diag], dim=0)
    marginal = torch.exp(log_marginal - math.log(b * (b - 1)))  # M, exponentiated once
    return 1.0 + joint - marginal


def _mlp(d_in: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(d_in, CRITIC_HIDDEN),
        nn.ReLU(),
        nn.Linear(CRITIC_HIDDEN, CRITIC_HIDDEN),
        nn.ReLU(),
        nn.Linear(CRITIC_HIDDEN, d_out),
    )


@register_loss("mi")
class MIAlphaLoss(IntermediateLoss):
    """MI-α between the student and teacher [CLS] states (Poole et al. 2019; Distiller, He et al. 2021).

    ``loss = −I_α(F, b)`` with the separable critic ``F_ij = g(x_j)ᵀ h(y_i)``, ``x`` = student [CLS]
    (position 0), ``y`` = teacher [CLS], ``g = MLP(d_S→128→128→64)``, ``h = MLP(d_T→128→128→64)``
    and the learned baseline ``b(y) = MLP(d_T→128→128→1)``; see the module docstring for I_α.
    Critic and baseline train with the student (same optimizer). No projection: the critic maps
    both sides. Needs batch size ≥ 2. Config:
    ``{"intermediate": {"loss": "mi", "alpha": 0.9, "strategy": "skip"}}``.

    Args:
        student_dim: d_S.
        teacher_dim: d_T.
        alpha: Interpolation weight in [0, 1].
        fixed_log_baseline: Use this constant log-baseline instead of a learned one (NWJ: 1.0).
    """

    level = "cls"

    def __init__(
        self, student_dim: int, teacher_dim: int, alpha: float, fixed_log_baseline: float | None = None
    ) -> None:
        super().__init__(student_dim, teacher_dim)
        if not 0.0 <= float(alpha) <= 1.0:
            raise ConfigError(f"MI-alpha must be in [0, 1], got {alpha}")
        self.alpha = float(alpha)
        self.fixed_log_baseline = fixed_log_baseline
        self.student_critic = _mlp(student_dim, CRITIC_EMBED)  # g
        self.teacher_critic = _mlp(teacher_dim, CRITIC_EMBED)  # h
        # At alpha = 1 the baseline drops out of the bound; an unused module would get no gradient.
        learned = fixed_log_baseline is None and self.alpha < 1.0
        self.baseline = _mlp(teacher_dim, 1) if learned else None

    @classmethod
    def from_config(cls, student_dim: int, teacher_dim: int, *, alpha: float | None = None) -> MIAlphaLoss:
        if alpha is None:
            raise ConfigError("intermediate loss 'mi' needs alpha in [0, 1] (paper: 0.9)")
        return cls(student_dim, teacher_dim, alpha)

    def forward(self, student_h: Tensor, teacher_h: Tensor, mask: Tensor) -> Tensor:
        self.check_states(student_h, teacher_h, mask)
        x, y = student_h[:, 0], teacher_h[:, 0]  # (B, d_S), (B, d_T): the [CLS] states
        if x.shape[0] < 2:
            raise ValueError(f"{self.key}: MI bounds need batch size >= 2, got {x.shape[0]}")
        scores = self.teacher_critic(y) @ self.student_critic(x).T  # (B, B): [i, j] = f(x_j, y_i)
        return -mi_lower_bound(scores, self.log_baseline(y), self.alpha)

    def log_baseline(self, y: Tensor) -> Tensor:
        """The log-baseline ``b(y_i)`` for each row, shape ``(B,)``."""
        if self.baseline is not None:
            return self.baseline(y).squeeze(-1)
        return y.new_full((y.shape[0],), self.fixed_log_baseline or 0.0)  # unused when alpha = 1

    def extra_repr(self) -> str:
        base = "learned" if self.baseline is not None else self.fixed_log_baseline
        return f"alpha={self.alpha}, baseline={base}"


class _FixedAlphaMILoss(MIAlphaLoss):
    """An MI-α special case whose α (and baseline) the key fixes."""

    fixed_alpha: float = 1.0
    fixed_baseline: float | None = None

    def __init__(self, student_dim: int, teacher_dim: int) -> None:
        super().__init__(student_dim, teacher_dim, self.fixed_alpha, self.fixed_baseline)

    @classmethod
    def from_config(cls, student_dim: int, teacher_dim: int, *, alpha: float | None = None) -> MIAlphaLoss:
        if alpha is not None and float(alpha) != cls.fixed_alpha:
            raise ConfigError(
                f"intermediate loss {cls.key!r} is MI-alpha with alpha={cls.fixed_alpha}, got alpha={alpha}"
            )
        return cls(student_dim, teacher_dim)


@register_loss("infonce")
class InfoNCELoss(_FixedAlphaMILoss):
    """Leave-one-out InfoNCE (van den Oord et al. 2018; Poole et al. 2019): MI-α at α = 1.

    ``I = mean_{i≠j}[F_ii − log(1/(B−1) Σ_{l≠j} exp F_il)]``.
    Config: ``{"intermediate": {"loss": "infonce"}}``.
    """

    fixed_alpha = 1.0


@register_loss("tuba")
class TUBALoss(_FixedAlphaMILoss):
    """TUBA with a learned baseline (Poole et al. 2019): MI-α at α = 0.

    ``I = 1 + E_p[f − b(y)] − E_{p(x)p(y)}[exp(f − b(y))]``. Config: ``{"intermediate": {"loss": "tuba"}}``.
    """

    fixed_alpha = 0.0


@register_loss("nwj")
class NWJLoss(_FixedAlphaMILoss):
    """NWJ / f-GAN KL bound (Nguyen, Wainwright, Jordan 2010): TUBA with the fixed log-baseline b ≡ 1.

    ``I = E_p[f] − e⁻¹ E_{p(x)p(y)}[exp f]``. Config: ``{"intermediate": {"loss": "nwj"}}``.
    """

    fixed_alpha = 0.0
    fixed_baseline = 1.0
