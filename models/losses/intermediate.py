"""Token-, [CLS]- and attention-level intermediate losses (spec §4).

``m`` is the attention mask, ``ĥ^S`` the projected student state (:func:`make_projection`: a
trainable ``Linear(d_S -> d_T)`` only when the hidden sizes differ). Sums are computed in float32
so that bf16 autocast does not lose the small per-token terms.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from models.errors import IncompatibleModelsError
from models.losses.base import IntermediateLoss, make_projection, register_loss


def _masked_token_mean(per_token: Tensor, mask: Tensor) -> Tensor:
    """Mean of a ``(B, L)`` tensor over the positions where ``mask`` is 1."""
    m = mask.to(per_token.dtype)
    return (per_token * m).sum() / m.sum()


class _ProjectedLoss(IntermediateLoss):
    """A loss whose student side is projected to the teacher's hidden size when they differ."""

    def __init__(self, student_dim: int, teacher_dim: int) -> None:
        super().__init__(student_dim, teacher_dim)
        self.proj = make_projection(student_dim, teacher_dim)

    @property
    def uses_projection(self) -> bool:
        return isinstance(self.proj, torch.nn.Linear)


@register_loss("mse")
class HiddenMSELoss(_ProjectedLoss):
    """Hidden-state MSE (FitNets, Romero et al. 2015; TinyBERT, Jiao et al. 2020).

    ``loss = Σ m ‖ĥ^S − h^T‖² / (Σ m · d_T)``, i.e. the mean squared error over real tokens.
    Config: ``{"intermediate": {"loss": "mse", "strategy": "skip"}}``.
    """

    def forward(self, student_h: Tensor, teacher_h: Tensor, mask: Tensor) -> Tensor:
        self.check_states(student_h, teacher_h, mask)
        diff = self.proj(student_h).float() - teacher_h.float()  # (B, L, d_T)
        return _masked_token_mean(diff.pow(2).sum(-1), mask) / self.teacher_dim


@register_loss("cos")
class HiddenCosineLoss(_ProjectedLoss):
    """Hidden-state cosine loss (DistilBERT's cosine embedding loss, Sanh et al. 2019).

    ``loss = mean over real tokens of 1 − cos(ĥ^S, h^T)``.
    Config: ``{"intermediate": {"loss": "cos", "strategy": "last"}}``.
    """

    def forward(self, student_h: Tensor, teacher_h: Tensor, mask: Tensor) -> Tensor:
        self.check_states(student_h, teacher_h, mask)
        cos = F.cosine_similarity(self.proj(student_h).float(), teacher_h.float(), dim=-1)  # (B, L)
        return _masked_token_mean(1.0 - cos, mask)


@register_loss("ce")
class HiddenCrossEntropyLoss(_ProjectedLoss):
    """Hidden-state cross-entropy with softmax over the hidden dimension (Distiller, He et al. 2021).

    ``loss = −Σ m Σ_d softmax(h^T)_d · log softmax(ĥ^S)_d / Σ m``.
    Config: ``{"intermediate": {"loss": "ce", "strategy": "skip"}}``.
    """

    def forward(self, student_h: Tensor, teacher_h: Tensor, mask: Tensor) -> Tensor:
        self.check_states(student_h, teacher_h, mask)
        log_p_student = F.log_softmax(self.proj(student_h).float(), dim=-1)  # (B, L, d_T)
        p_teacher = F.softmax(teacher_h.float(), dim=-1)
        return _masked_token_mean(-(p_teacher * log_p_student).sum(-1), mask)


@register_loss("pkd")
class PatientKDLoss(_ProjectedLoss):
    """Patient KD on the [CLS] state (Sun et al. 2019, "Patient Knowledge Distillation").

    ``loss = mean_b ‖ĥ^S_b/‖ĥ^S_b‖ − h^T_b/‖h^T_b‖‖²`` with ``h_b`` the state at position 0.
    Only position 0 is used, so the sequence lengths (tokenizers) may differ.
    Config: ``{"intermediate": {"loss": "pkd", "strategy": "skip"}}``.
    """

    level = "cls"

    def forward(self, student_h: Tensor, teacher_h: Tensor, mask: Tensor) -> Tensor:
        self.check_states(student_h, teacher_h, mask)
        s = F.normalize(self.proj(student_h[:, 0]).float(), dim=-1)  # (B, d_T)
        t = F.normalize(teacher_h[:, 0].float(), dim=-1)
        return (s - t).pow(2).sum(-1).mean()


@register_loss("att_mse")
class AttentionMSELoss(IntermediateLoss):
    """Attention-map MSE (TinyBERT, Jiao et al. 2020) on attention probabilities.

    With ``A`` of shape ``(B, heads, L, L)`` (rows = queries, summing to 1 over keys):
    ``loss = Σ_{b,h,i} m_bi Σ_j m_bj (A^S − A^T)²_{bhij} / (heads · Σ m)``: the squared error of
    each real query row's distribution, averaged over real query rows and heads. The hidden sizes
    are irrelevant; the head counts must match.
    Config: ``{"intermediate": {"loss": "att_mse", "strategy": "last"}}``.
    """

    level = "attention"

    def forward(self, student_h: Tensor, teacher_h: Tensor, mask: Tensor) -> Tensor:
        self._check_maps(student_h, teacher_h, mask)
        m = mask.float()  # (B, L)
        sq = (student_h.float() - teacher_h.float()).pow(2) * m[:, None, None, :]  # (B, H, L, L)
        row_err = sq.sum(-1)  # (B, H, L)
        return (row_err * m[:, None, :]).sum() / (m.sum() * student_h.shape[1])

    def _check_maps(self, student_att: Tensor, teacher_att: Tensor, mask: Tensor) -> None:
        if student_att.dim() != 4 or teacher_att.dim() != 4:
            raise ValueError(
                f"att_mse: attention maps must be (B, heads, L, L); got student {tuple(student_att.shape)}, "
                f"teacher {tuple(teacher_att.shape)}"
            )
        if student_att.shape[1] != teacher_att.shape[1]:
            raise IncompatibleModelsError(
                f"att_mse needs equal attention head counts (student {student_att.shape[1]}, "
                f"teacher {teacher_att.shape[1]})"
            )
        if student_att.shape != teacher_att.shape:
            raise IncompatibleModelsError(
                f"att_mse: attention map shapes differ (student {tuple(student_att.shape)}, teacher "
                f"{tuple(teacher_att.shape)}); it needs one tokenizer and equal sequence lengths"
            )
        b, _, q, k = student_att.shape
        if tuple(mask.shape) != (b, q) or q != k:
            raise ValueError(
                f"att_mse: mask must be (B, L) = {(b, q)} for square maps, got {tuple(mask.shape)}"
            )
