"""Layer mapping (spec §3): which student layer learns from which teacher layer, and the matcher
module that applies one intermediate loss per matched pair.

Indices are into ``hidden_states`` (``L + 1`` entries, 0 = embedding output). Attention maps have
no embedding entry: layer ``i``'s map is ``attentions[i - 1]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from models.config import STRATEGIES
from models.errors import ConfigError, IncompatibleModelsError
from models.losses.base import INTERMEDIATE_LOSSES, build_intermediate_loss


def layer_pairs(strategy: Literal["skip", "last"], n_teacher: int, n_student: int) -> list[tuple[int, int]]:
    """The matched ``(teacher_idx, student_idx)`` pairs for i = 0..L_S, embeddings included.

    skip: ``(⌊i·L_T/L_S⌋, i)`` (12→4: T0,3,6,9,12 ↔ S0..4); last: ``(L_T − L_S + i, i)``.

    Raises:
        ConfigError: Unknown strategy, or ``emd`` (it matches every layer: use :class:`LayerMatcher`).
        IncompatibleModelsError: The student is deeper than the teacher, or a depth is < 1.
    """
    if strategy not in ("skip", "last"):
        raise ConfigError(
            f"layer_pairs supports 'skip' and 'last', got {strategy!r}; "
            "'emd' matches every layer pair (LayerMatcher.from_strategy handles it)"
        )
    if n_student < 1 or n_teacher < 1:
        raise IncompatibleModelsError(f"layer counts must be >= 1 (teacher {n_teacher}, student {n_student})")
    if n_student > n_teacher:
        raise IncompatibleModelsError(
            f"strategy {strategy!r} maps student layers onto teacher layers, but the student has "
            f"{n_student} layers and the teacher only {n_teacher}"
        )
    if strategy == "skip":
        return [(i * n_teacher // n_student, i) for i in range(n_student + 1)]  # integer floor: exact
    return [(n_teacher - n_student + i, i) for i in range(n_student + 1)]


def emd_flow(cost: np.ndarray | Tensor) -> Tensor:
    """The earth mover's flow between uniform layer weights ``(1/L_S, 1/L_T)`` (POT ``ot.emd``).

    Solved on the detached cost, so the flow is a constant weighting of the differentiable costs.

    Args:
        cost: ``(L_S, L_T)`` finite costs.

    Returns:
        ``(L_S, L_T)`` flow with row sums 1/L_S, column sums 1/L_T, total 1 (float32 or float64,
        on the cost's device).

    Raises:
        ValueError: Bad shape or non-finite cost.
        RuntimeError: The solver did not converge.
    """
    if isinstance(cost, Tensor):
        device = cost.device
        dtype = cost.dtype if cost.dtype == torch.float64 else torch.float32
        c = cost.detach().to("cpu", torch.float64).numpy()
    else:
        device, dtype = torch.device("cpu"), torch.float64
        c = np.asarray(cost, dtype=np.float64)
    if c.ndim != 2 or 0 in c.shape:
        raise ValueError(f"EMD cost must be a non-empty (L_S, L_T) matrix, got shape {c.shape}")
    if not np.isfinite(c).all():
        raise ValueError("EMD cost has NaN or infinite entries; a layer loss diverged")
    a = np.full(c.shape[0], 1.0 / c.shape[0])
    b = np.full(c.shape[1], 1.0 / c.shape[1])
    import ot  # POT: imported on first use, only EMD needs it

    flow, log = ot.emd(a, b, np.ascontiguousarray(c), log=True)
    if log.get("warning"):
        raise RuntimeError(f"EMD solver failed: {log['warning']}")
    return torch.from_numpy(np.asarray(flow)).to(device=device, dtype=dtype)


class LayerMatcher(nn.Module):
    """Applies one intermediate loss to matched student/teacher layers; owns one loss per pair.

    skip/last: ``Σ_pairs loss(H^S_s, H^T_t)``. emd: every student layer 1..L_S against every teacher
    layer 1..L_T with cost ``D[s, t] = loss_s(H^S_s, H^T_t)`` (one loss module, hence one projection
    or critic, per student layer), ``loss = Σ F⊙D`` with ``F = emd_flow(D)``, plus ``pairs``
    (normally the embeddings ``[(0, 0)]``) matched 1:1. Teacher inputs are detached.
    Config: ``{"intermediate": {"loss": "mse", "strategy": "emd"}}``.

    Args:
        kind: Intermediate-loss registry key.
        pairs: ``(teacher_idx, student_idx)`` pairs matched 1:1 (under emd: besides the EMD term).
        student_dim: Student hidden size.
        teacher_dim: Teacher hidden size.
        alpha: MI-alpha for ``mi``.
        strategy: ``skip``, ``last`` or ``emd``.
        n_student_layers: L_S (transformer layers, embeddings excluded).
        n_teacher_layers: L_T.
    """

    def __init__(
        self,
        kind: str,
        pairs: Sequence[tuple[int, int]],
        student_dim: int,
        teacher_dim: int,
        *,
        alpha: float | None = None,
        strategy: str = "skip",
        n_student_layers: int,
        n_teacher_layers: int,
    ) -> None:
        super().__init__()
        if strategy not in STRATEGIES:
            raise ConfigError(f"unknown intermediate strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
        self.kind, self.strategy = kind, strategy
        self.n_student_layers, self.n_teacher_layers = int(n_student_layers), int(n_teacher_layers)
        self.on_attention = INTERMEDIATE_LOSSES.get(kind).level == "attention"
        self.pairs = [(int(t), int(s)) for t, s in pairs]
        self._check_pairs()
        self.pair_losses = nn.ModuleList(
            build_intermediate_loss(kind, student_dim, teacher_dim, alpha=alpha) for _ in self.pairs
        )
        n_emd = self.n_student_layers if strategy == "emd" else 0
        self.emd_losses = nn.ModuleList(
            build_intermediate_loss(kind, student_dim, teacher_dim, alpha=alpha) for _ in range(n_emd)
        )
        self.last_flow: Tensor | None = None  # the latest EMD flow, for logging

    @classmethod
    def from_strategy(
        cls,
        kind: str,
        strategy: str,
        *,
        student_dim: int,
        teacher_dim: int,
        n_student_layers: int,
        n_teacher_layers: int,
        alpha: float | None = None,
    ) -> LayerMatcher:
        """Build with the spec's pairs: :func:`layer_pairs` for skip/last, the embeddings for emd.

        Attention losses drop the embedding pair (there is no attention map for it).
        """
        pairs = [(0, 0)] if strategy == "emd" else layer_pairs(strategy, n_teacher_layers, n_student_layers)
        if INTERMEDIATE_LOSSES.get(kind).level == "attention":
            pairs = [(t, s) for t, s in pairs if t > 0 and s > 0]
        return cls(
            kind,
            pairs,
            student_dim,
            teacher_dim,
            alpha=alpha,
            strategy=strategy,
            n_student_layers=n_student_layers,
            n_teacher_layers=n_teacher_layers,
        )

    def forward(
        self,
        student_hidden_states: Sequence[Tensor],
        teacher_hidden_states: Sequence[Tensor],
        mask: Tensor,
        student_attentions: Sequence[Tensor] | None = None,
        teacher_attentions: Sequence[Tensor] | None = None,
    ) -> Tensor:
        """The summed intermediate loss (scalar); see the class docstring."""
        student, teacher = self._layer_inputs(
            student_hidden_states, teacher_hidden_states, student_attentions, teacher_attentions
        )
        self._check_mask(mask, student[-1])
        self._check_present(teacher)
        loss = torch.zeros((), device=mask.device)
        for (t, s), fn in zip(self.pairs, self.pair_losses, strict=True):
            loss = loss + fn(student[s], teacher[t], mask)
        if self.strategy == "emd":
            loss = loss + self._emd_loss(student, teacher, mask)
        return loss

    def _emd_loss(self, student: list, teacher: list, mask: Tensor) -> Tensor:
        cost = torch.stack(
            [
                torch.stack([fn(student[s], teacher[t], mask) for t in range(1, self.n_teacher_layers + 1)])
                for s, fn in enumerate(self.emd_losses, start=1)
            ]
        )  # (L_S, L_T)
        self.last_flow = emd_flow(cost)
        return (self.last_flow * cost).sum()

    def _layer_inputs(self, s_hidden, t_hidden, s_att, t_att) -> tuple[list, list]:
        """Per-layer inputs indexed like hidden_states; teacher detached."""
        if self.on_attention:
            if s_att is None or t_att is None:
                raise ValueError(
                    f"intermediate loss {self.kind!r} needs student and teacher attentions "
                    "(run the models with output_attentions=True)"
                )
            _check_count("student attentions", s_att, self.n_student_layers)
            _check_count("teacher attentions", t_att, self.n_teacher_layers)
            return [None, *s_att], [None, *(a.detach() for a in t_att)]
        _check_count("student hidden states", s_hidden, self.n_student_layers + 1)
        _check_count("teacher hidden states", t_hidden, self.n_teacher_layers + 1)
        return list(s_hidden), [h.detach() if h is not None else None for h in t_hidden]  # None: unread layer

    def _check_pairs(self) -> None:
        if not self.pairs and self.strategy != "emd":
            raise ConfigError(f"strategy {self.strategy!r} needs at least one matched layer pair")
        for t, s in self.pairs:
            if not (0 <= t <= self.n_teacher_layers and 0 <= s <= self.n_student_layers):
                raise IncompatibleModelsError(
                    f"layer pair (teacher {t}, student {s}) is out of range for a teacher with "
                    f"{self.n_teacher_layers} layers and a student with {self.n_student_layers} layers "
                    "(index 0 = embeddings)"
                )
            if self.on_attention and (t == 0 or s == 0):
                raise ConfigError(
                    f"{self.kind!r} has no attention map for the embeddings (index 0); "
                    f"drop pair (teacher {t}, student {s})"
                )

    def _check_present(self, teacher: list) -> None:
        """Callers may pass None for teacher layers no pair reads (e.g. layers left out of a cache)."""
        needed = {t for t, _ in self.pairs}
        if self.strategy == "emd":
            needed |= set(range(1, self.n_teacher_layers + 1))
        missing = sorted(t for t in needed if teacher[t] is None)
        if missing:
            raise ValueError(
                f"teacher layers {missing} are needed by the {self.strategy!r} mapping but were None"
            )

    @staticmethod
    def _check_mask(mask: Tensor, student_state: Tensor) -> None:
        if mask.dim() != 2 or mask.shape[0] != student_state.shape[0]:
            raise ValueError(
                f"mask must be (B, L) with B = {student_state.shape[0]}, got {tuple(mask.shape)}"
            )
        # One host sync per step: [CLS] losses read position 0, and it keeps every masked mean finite.
        if not bool(mask[:, 0].bool().all()):
            raise ValueError("position 0 ([CLS]) is padding in some rows; right-padded inputs are expected")


def _check_count(name: str, states: Sequence[Tensor], expected: int) -> None:
    if len(states) != expected:
        raise IncompatibleModelsError(
            f"expected {expected} {name}, got {len(states)}; "
            "do the layer counts given to LayerMatcher match the models?"
        )
