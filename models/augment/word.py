"""Word-level random edits: swap adjacent words, delete words, insert copies of words.

"random" is the paper's third augmenter (swap adjacent words, nlpaug ``RandomWordAug``
style). Each augmenter picks ``num_changes(n, aug_p)`` words of an n-word text (round(aug_p*n),
at least one when n >= 2). Texts are split on whitespace and re-joined with single spaces.
Example config: ``{"pipeline": ["random"], "aug_p": 0.1}``.
"""

from __future__ import annotations

import random

from models.augment.base import AUGMENTERS, AugmentResources, check_aug_p, num_changes


class _WordEdit:
    """Shared construction and batch loop; subclasses edit one list of words."""

    def __init__(self, aug_p: float) -> None:
        self.aug_p = check_aug_p(aug_p)

    @classmethod
    def from_resources(cls, aug_p: float, resources: AugmentResources) -> _WordEdit:
        del resources  # needs none
        return cls(aug_p)

    def augment(self, texts: list[str], rng: random.Random) -> list[str]:
        return [" ".join(self._edit(text.split(), rng)) for text in texts]

    def _edit(self, words: list[str], rng: random.Random) -> list[str]:
        raise NotImplementedError


@AUGMENTERS.register("random")
class RandomSwap(_WordEdit):
    """Swap k = round(aug_p * n) distinct pairs of adjacent words, in random order.

    Each adjacent pair (i, i+1) is swapped at most once, so the swaps never undo each other:
    between k+1 and 2k positions change (fewer only when equal words swap). A text of one word
    is left as it is.
    """

    def _edit(self, words: list[str], rng: random.Random) -> list[str]:
        n = len(words)
        out = list(words)
        if n < 2:
            return out
        for i in rng.sample(range(n - 1), min(num_changes(n, self.aug_p), n - 1)):
            out[i], out[i + 1] = out[i + 1], out[i]
        return out


@AUGMENTERS.register("delete")
class RandomDelete(_WordEdit):
    """Delete the chosen words, always keeping at least one word."""

    def _edit(self, words: list[str], rng: random.Random) -> list[str]:
        n = len(words)
        count = min(num_changes(n, self.aug_p), n - 1)
        if count <= 0:
            return list(words)
        dropped = set(rng.sample(range(n), count))
        return [w for i, w in enumerate(words) if i not in dropped]


@AUGMENTERS.register("insert")
class RandomInsert(_WordEdit):
    """Insert copies of words drawn from the text itself at random positions."""

    def _edit(self, words: list[str], rng: random.Random) -> list[str]:
        out = list(words)
        for _ in range(num_changes(len(words), self.aug_p)):
            out.insert(rng.randint(0, len(out)), rng.choice(words))
        return out
