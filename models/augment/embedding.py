"""Embedding-neighbour substitution: an offline stand-in for contextual augmentation.

As in TinyBERT's data augmentation for single-piece words, a chosen word that is one token in
the teacher's tokenizer is replaced by one of its K nearest neighbours (cosine similarity) in the
teacher's input-embedding table. Special tokens, "##" word pieces, non-alphabetic tokens and the
word itself are never proposed. Neighbours are computed lazily, only for the tokens met, and
cached on the augmenter. Example config: ``{"pipeline": ["embedding"], "aug_p": 0.1}``.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from models.augment.base import (
    AUGMENTERS,
    AugmentResources,
    check_aug_p,
    match_case,
    num_changes,
    split_core,
    substitutable,
    whole_word,
)
from models.errors import ComponentUnavailableError, ConfigError


@AUGMENTERS.register("embedding")
class EmbeddingNeighbour:
    """Replace about ``aug_p`` of the words with an embedding-space neighbour.

    Args:
        aug_p: Fraction of words to change (only eligible words are changed).
        embedding_matrix: The teacher's input-embedding table, (V, d), numpy or torch.
        tokenizer: The teacher's tokenizer (its ids index ``embedding_matrix``).
        num_neighbours: K, how many nearest neighbours a replacement is drawn from.
    """

    def __init__(
        self, aug_p: float, embedding_matrix: Any, tokenizer: Any, *, num_neighbours: int = 10
    ) -> None:
        self.aug_p = check_aug_p(aug_p)
        if num_neighbours < 1:
            raise ConfigError(f"num_neighbours must be >= 1, got {num_neighbours}")
        if hasattr(embedding_matrix, "detach"):  # a torch tensor; avoid importing torch here
            embedding_matrix = embedding_matrix.detach().float().cpu().numpy()
        matrix = np.asarray(embedding_matrix, dtype=np.float32)
        if matrix.ndim != 2:
            raise ConfigError(f"embedding_matrix must be 2-D (V, d), got shape {matrix.shape}")
        self.vocab_size = min(matrix.shape[0], len(tokenizer))
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        self._unit = matrix / np.maximum(norms, 1e-12)  # (V, d)
        self.tokenizer = tokenizer
        self.num_neighbours = num_neighbours
        self._special = set(tokenizer.all_special_ids)
        self._word_token: dict[str, int | None] = {}
        self._neighbours: dict[int, tuple[str, ...]] = {}

    @classmethod
    def from_resources(cls, aug_p: float, resources: AugmentResources) -> EmbeddingNeighbour:
        if resources.embedding_matrix is None or resources.tokenizer is None:
            raise ComponentUnavailableError(
                "embedding augmentation needs the teacher's input-embedding matrix and tokenizer: "
                "set AugmentResources.embedding_matrix and AugmentResources.tokenizer"
            )
        return cls(aug_p, resources.embedding_matrix, resources.tokenizer)

    def token_id(self, word: str) -> int | None:
        """The id of ``word`` if the tokenizer keeps it as one non-special token, else None."""
        if word not in self._word_token:
            ids = self.tokenizer(word, add_special_tokens=False)["input_ids"]
            ok = len(ids) == 1 and ids[0] not in self._special and ids[0] < self.vocab_size
            self._word_token[word] = ids[0] if ok else None
        return self._word_token[word]

    def neighbours(self, token_id: int) -> tuple[str, ...]:
        """The K nearest whole-word tokens of ``token_id`` by cosine similarity, nearest first."""
        if token_id not in self._neighbours:
            own = self._surface(token_id) or ""
            sims = self._unit[: self.vocab_size] @ self._unit[token_id]  # (V,)
            found: list[str] = []
            for cand in np.argsort(-sims, kind="stable"):
                word = self._surface(int(cand))
                if not word or word.lower() == own.lower() or word in found:
                    continue
                if own.isascii() and not word.isascii():  # no foreign-script swaps in English text
                    continue
                found.append(word)
                if len(found) == self.num_neighbours:
                    break
            self._neighbours[token_id] = tuple(found)
        return self._neighbours[token_id]

    def _surface(self, token_id: int) -> str | None:
        """The word a token spells, or None for special, sub-word or non-alphabetic tokens."""
        if token_id in self._special:
            return None
        token = self.tokenizer.convert_ids_to_tokens(token_id)
        return whole_word(token) if isinstance(token, str) else None

    def augment(self, texts: list[str], rng: random.Random) -> list[str]:
        return [self._augment_one(text, rng) for text in texts]

    def _augment_one(self, text: str, rng: random.Random) -> str:
        words = text.split()
        # Neighbours are looked up only for the chosen words (lazy), not every eligible one.
        eligible = [
            i
            for i, w in enumerate(words)
            if substitutable(core := split_core(w)[1]) and self.token_id(core) is not None
        ]
        count = min(num_changes(len(words), self.aug_p), len(eligible))
        out = list(words)
        for i in sorted(rng.sample(eligible, count)):
            lead, core, trail = split_core(words[i])
            choices = self.neighbours(self.token_id(core))
            if choices:
                out[i] = lead + match_case(core, rng.choice(choices)) + trail
        return " ".join(out)
