"""Word-embedding mixup for KD (spec §2; Zhang et al. 2018, applied to text as in Distiller).

λ ~ Beta(α, α) and a shuffled pairing π of the batch; each model mixes its OWN word embeddings
E(x) of the pair, Ẽ = λ·E(x) + (1−λ)·E(x_π), and the batch becomes [original; mixed]. The KD
target is the teacher's output on the mixed input; the hard target is λ·y + (1−λ)·y_π (one-hot
for classification). The model adds position and token-type embeddings itself when called with
``inputs_embeds``, so only word embeddings are mixed. Config example: ``{"mixup": {"enabled":
true, "alpha": 0.4}}``.
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F


def sample_lambda(alpha: float, generator: torch.Generator | None = None) -> float:
    """Draw the mixing weight λ ~ Beta(alpha, alpha).

    ``torch.distributions.Beta`` cannot take a generator, so a seed drawn from ``generator``
    drives the standard library's Beta sampler: reproducible under the torch generator.

    Raises:
        ValueError: ``alpha`` is not positive.
    """
    if not alpha > 0:
        raise ValueError(f"mixup alpha must be > 0, got {alpha!r}")
    seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
    return random.Random(seed).betavariate(alpha, alpha)


def mix_permutation(batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random pairing π of the batch: example i is mixed with example π[i]. Shape (B,)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return torch.randperm(batch_size, generator=generator)


def mix_embeddings(embeds: torch.Tensor, lam: float, perm: torch.Tensor) -> torch.Tensor:
    """λ·E(x) + (1−λ)·E(x_π) for embeddings of shape (B, L, d)."""
    _check_perm(perm, embeds.shape[0])
    return lam * embeds + (1.0 - lam) * embeds[perm]  # (B, L, d)


def mix_attention_mask(mask: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """The union of both masks (B, L): the mixed sequence covers the tokens of both inputs."""
    _check_perm(perm, mask.shape[0])
    return torch.maximum(mask, mask[perm])


def mixed_hard_targets(
    labels: torch.Tensor, lam: float, perm: torch.Tensor, num_labels: int | None
) -> torch.Tensor:
    """The hard targets of the mixed batch.

    Args:
        labels: Class indices (B,) for classification, or float targets (B,) for regression.
        lam: Mixing weight.
        perm: The pairing used for the inputs.
        num_labels: Number of classes; None for regression.

    Returns:
        (B, num_labels) soft one-hot mixes for classification, (B,) mixes for regression.
    """
    _check_perm(perm, labels.shape[0])
    y = (
        labels.float() if num_labels is None else F.one_hot(labels.long(), num_labels).float()
    )  # (B,) | (B, C)
    return lam * y + (1.0 - lam) * y[perm]


def embed_inputs(
    model: torch.nn.Module, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None
) -> torch.Tensor:
    """The model's word embeddings of ``input_ids``, shape (B, L, d), without position/type terms.

    ``token_type_ids`` is only checked here: pass it to the model together with the mixed
    ``inputs_embeds``, which adds the position and token-type embeddings itself.
    """
    if token_type_ids is not None and token_type_ids.shape != input_ids.shape:
        raise ValueError(
            f"token_type_ids shape {tuple(token_type_ids.shape)} != input_ids shape {tuple(input_ids.shape)}"
        )
    return model.get_input_embeddings()(input_ids)


def _check_perm(perm: torch.Tensor, batch_size: int) -> None:
    if perm.shape != (batch_size,):
        raise ValueError(f"perm must have shape ({batch_size},), got {tuple(perm.shape)}")
