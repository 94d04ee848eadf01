"""Prediction-layer KD losses and the hard-label task loss (spec §2, §5).

Logits are compared at temperature τ (Hinton et al. 2015, "Distilling the Knowledge in a Neural
Network"); the Distiller sweeps used τ = 1 and no τ² factor. The teacher logits are a constant
target (detached). Config example: ``{"prediction": {"loss": "ce", "temperature": 2.0,
"scale_by_t2": true}}``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor

from models.errors import ConfigError
from models.registry import Registry

PredictionLossFn = Callable[[Tensor, Tensor, float], Tensor]
PREDICTION_LOSSES: Registry[PredictionLossFn] = Registry("prediction loss")

# These compare class distributions, which are identically 1 (loss constant) for one output.
_DISTRIBUTION_LOSSES = ("ce", "kl")


@PREDICTION_LOSSES.register("ce")
def soft_cross_entropy(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """``mean_b −Σ_c softmax(z^T/τ)_c · log softmax(z^S/τ)_c``."""
    p_teacher = F.softmax(teacher_logits / temperature, dim=-1)
    return -(p_teacher * F.log_softmax(student_logits / temperature, dim=-1)).sum(-1).mean()


@PREDICTION_LOSSES.register("mse")
def logit_mse(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """``mean((z^S/τ − z^T/τ)²)`` over batch and outputs (regression: one output)."""
    return ((student_logits - teacher_logits) / temperature).pow(2).mean()


@PREDICTION_LOSSES.register("kl")
def kl_divergence(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """``KL(softmax(z^T/τ) ‖ softmax(z^S/τ))`` averaged over the batch."""
    return F.kl_div(
        F.log_softmax(student_logits / temperature, dim=-1),
        F.log_softmax(teacher_logits / temperature, dim=-1),
        reduction="batchmean",
        log_target=True,
    )


def _as_2d(logits: Tensor, name: str) -> Tensor:
    """``(B,)`` -> ``(B, 1)``; ``(B, C)`` unchanged."""
    if logits.dim() == 1:
        return logits[:, None]
    if logits.dim() != 2:
        raise ValueError(f"{name} must be (B, C) or (B,), got shape {tuple(logits.shape)}")
    return logits


def prediction_loss(
    kind: str,
    student_logits: Tensor,
    teacher_logits: Tensor,
    temperature: float = 1.0,
    scale_by_t2: bool = False,
) -> Tensor:
    """The prediction-layer KD loss, a scalar averaged over the batch.

    Args:
        kind: ``ce`` (soft cross-entropy), ``mse`` (on logits/τ) or ``kl`` (KL teacher ‖ student).
        student_logits: ``(B, C)``, or ``(B,)``/``(B, 1)`` for regression.
        teacher_logits: Same shape; treated as a constant (detached).
        temperature: τ > 0.
        scale_by_t2: Multiply by τ² (keeps gradient scale comparable across τ).

    Raises:
        UnknownKeyError: Unknown ``kind``.
        ConfigError: τ ≤ 0, or ``ce``/``kl`` on a single-output model (identically zero).
        ValueError: Shapes differ.
    """
    fn = PREDICTION_LOSSES.get(kind)
    if not temperature > 0:
        raise ConfigError(f"prediction temperature must be > 0, got {temperature}")
    s = _as_2d(student_logits, "student_logits")
    t = _as_2d(teacher_logits, "teacher_logits").detach()
    if s.shape != t.shape:
        raise ValueError(f"student and teacher logits differ in shape: {tuple(s.shape)} vs {tuple(t.shape)}")
    if kind in _DISTRIBUTION_LOSSES and s.shape[1] == 1:
        raise ConfigError(
            f"prediction loss {kind!r} is identically zero for a single-output (regression) model; use 'mse'"
        )
    loss = fn(s.float(), t.float(), float(temperature))
    return loss * temperature**2 if scale_by_t2 else loss


def hard_loss(logits: Tensor, labels: Tensor, task_kind: str) -> Tensor:
    """The task loss on gold labels: cross-entropy (classification) or MSE (regression).

    Args:
        logits: ``(B, C)`` for classification; ``(B,)`` or ``(B, 1)`` for regression.
        labels: Classification: class ids ``(B,)`` (integer), or soft targets ``(B, C)`` (float, e.g.
            mixup's ``λ·y + (1−λ)·y_π``). Regression: float targets ``(B,)`` or ``(B, 1)``.
        task_kind: ``classification`` or ``regression``.

    Raises:
        ConfigError: Unknown ``task_kind``.
        ValueError: Shapes or dtypes that do not fit the task (e.g. integer regression targets,
            which usually mean the labels were truncated upstream).
    """
    if task_kind == "classification":
        if logits.dim() != 2 or logits.shape[1] < 2:
            raise ValueError(f"classification logits must be (B, C) with C >= 2, got {tuple(logits.shape)}")
        if labels.is_floating_point():
            if labels.shape != logits.shape:
                raise ValueError(
                    f"soft labels must match logits {tuple(logits.shape)}, got {tuple(labels.shape)}"
                )
            return F.cross_entropy(logits.float(), labels.float())  # probability targets
        if labels.shape != logits.shape[:1]:
            raise ValueError(f"class labels must be (B,) = ({logits.shape[0]},), got {tuple(labels.shape)}")
        return F.cross_entropy(logits.float(), labels.long())
    if task_kind == "regression":
        pred = _as_2d(logits, "logits")
        if pred.shape[1] != 1:
            raise ValueError(f"regression needs one output, got logits of shape {tuple(logits.shape)}")
        if not labels.is_floating_point():
            raise ValueError(f"regression labels must be floating point, got {labels.dtype}")
        if labels.numel() != pred.shape[0] or labels.dim() > 2:
            raise ValueError(
                f"regression labels must be (B,) = ({pred.shape[0]},), got {tuple(labels.shape)}"
            )
        return F.mse_loss(pred[:, 0].float(), labels.reshape(-1).float())
    raise ConfigError(f"task_kind must be 'classification' or 'regression', got {task_kind!r}")
