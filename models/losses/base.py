"""Shared pieces of the intermediate-layer losses: base class, registry, projection.

Every intermediate loss compares one matched (student layer, teacher layer) pair and shares one
call signature, ``forward(student_h, teacher_h, mask) -> scalar``. Losses are registry keys
(``models.config.INTERMEDIATE_LOSSES`` minus ``"none"``), built by :func:`build_intermediate_loss`.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from torch import Tensor, nn

from models.errors import ConfigError, IncompatibleModelsError
from models.registry import Registry

Level = Literal["token", "cls", "attention"]

INTERMEDIATE_LOSSES: Registry[type[IntermediateLoss]] = Registry("intermediate loss")


def register_loss(key: str):
    """Class decorator: register an :class:`IntermediateLoss` under ``key`` and record the key."""

    def deco(cls: type[IntermediateLoss]) -> type[IntermediateLoss]:
        cls.key = key
        return INTERMEDIATE_LOSSES.register(key)(cls)

    return deco


class IntermediateLoss(nn.Module):
    """Base class of the intermediate losses: one matched layer pair -> scalar loss.

    ``forward(student_h, teacher_h, mask)`` takes hidden states ``(B, L, d_S)`` and ``(B, L, d_T)``
    and the attention mask ``(B, L)`` (1 = real token, 0 = padding); attention losses take
    ``(B, heads, L, L)`` probability maps instead. The teacher side is a constant target: callers
    pass detached teacher states (``LayerMatcher`` does).

    Attributes:
        key: The registry key.
        level: ``token`` (compares every position: same tokenizer needed), ``cls`` (position 0 only)
            or ``attention``.
    """

    key: ClassVar[str] = ""
    level: ClassVar[Level] = "token"

    def __init__(self, student_dim: int, teacher_dim: int) -> None:
        super().__init__()
        if student_dim < 1 or teacher_dim < 1:
            raise ValueError(
                f"hidden sizes must be positive, got student {student_dim}, teacher {teacher_dim}"
            )
        self.student_dim = int(student_dim)
        self.teacher_dim = int(teacher_dim)

    @classmethod
    def from_config(
        cls, student_dim: int, teacher_dim: int, *, alpha: float | None = None
    ) -> IntermediateLoss:
        """Build the loss from the config values; only MI losses take ``alpha``."""
        if alpha is not None:
            raise ConfigError(
                f"intermediate loss {cls.key!r} takes no alpha (got {alpha}); alpha is for 'mi'"
            )
        return cls(student_dim, teacher_dim)

    def check_states(self, student_h: Tensor, teacher_h: Tensor, mask: Tensor) -> None:
        """Validate shapes of hidden-state inputs; raise with a message naming the problem."""
        if student_h.dim() != 3 or teacher_h.dim() != 3:
            raise ValueError(
                f"{self.key}: hidden states must be (B, L, d); got student {tuple(student_h.shape)}, "
                f"teacher {tuple(teacher_h.shape)}"
            )
        if student_h.shape[0] != teacher_h.shape[0]:
            raise ValueError(
                f"{self.key}: batch sizes differ (student {student_h.shape[0]}, teacher {teacher_h.shape[0]})"
            )
        if (student_h.shape[-1], teacher_h.shape[-1]) != (self.student_dim, self.teacher_dim):
            raise ValueError(
                f"{self.key}: built for hidden sizes (student {self.student_dim}, "
                f"teacher {self.teacher_dim}), got ({student_h.shape[-1]}, {teacher_h.shape[-1]})"
            )
        if self.level == "token" and student_h.shape[1] != teacher_h.shape[1]:
            raise IncompatibleModelsError(
                f"{self.key} compares token positions, but the sequence lengths differ (student "
                f"{student_h.shape[1]}, teacher {teacher_h.shape[1]}); token-level losses need one tokenizer"
            )
        if tuple(mask.shape) != tuple(student_h.shape[:2]):
            raise ValueError(
                f"{self.key}: mask must be (B, L) = {tuple(student_h.shape[:2])}, got {tuple(mask.shape)}"
            )


def make_projection(student_dim: int, teacher_dim: int) -> nn.Module:
    """The student-side projection of spec §3: ``Linear(d_S -> d_T)`` when sizes differ, else identity.

    Initialised N(0, 0.02) with zero bias, trained with the student.
    """
    if student_dim == teacher_dim:
        return nn.Identity()
    proj = nn.Linear(student_dim, teacher_dim)
    nn.init.normal_(proj.weight, mean=0.0, std=0.02)
    nn.init.zeros_(proj.bias)
    return proj


def build_intermediate_loss(
    kind: str, student_dim: int, teacher_dim: int, *, alpha: float | None = None
) -> IntermediateLoss:
    """Build one intermediate loss module for one matched layer pair.

    Args:
        kind: Registry key, e.g. ``"mse"`` or ``"mi"``.
        student_dim: Student hidden size d_S.
        teacher_dim: Teacher hidden size d_T.
        alpha: MI-alpha, required for ``"mi"``; ``infonce``/``tuba``/``nwj`` accept only their own value.

    Returns:
        A fresh module (own projection or critic).

    Raises:
        UnknownKeyError: Unknown ``kind`` (the message lists the known keys).
        ConfigError: ``alpha`` missing, out of range, or given to a loss that takes none.
    """
    return INTERMEDIATE_LOSSES.get(kind).from_config(student_dim, teacher_dim, alpha=alpha)
