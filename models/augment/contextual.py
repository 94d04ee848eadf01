"""Contextual augmentation: masked-LM word substitution (the paper's "contextual" augmenter).

The chosen words of a text (alphabetic non-stopwords, about ``aug_p`` of all words) are masked
together, one mask per word, and each is replaced by a word drawn uniformly from the masked LM's
``top_k`` whole-word predictions (sub-word pieces, special tokens and the original word
excluded). Masking the chosen words at once needs one forward pass per batch. The checkpoint is a
local folder (``augmentation.mlm_model``), loaded with ``local_files_only=True``.
Example config: ``{"pipeline": ["contextual"], "aug_p": 0.1, "mlm_model": "/ckpt/bert-mlm"}``.
"""

from __future__ import annotations

import random
from typing import Any

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
from models.augment.checkpoints import load_local_checkpoint
from models.errors import ComponentUnavailableError

MLM_HINT = "set augmentation.mlm_model (AugmentResources.mlm_model) to a local masked-LM checkpoint folder"


@AUGMENTERS.register("contextual")
class MaskedLMSubstitution:
    """Replace about ``aug_p`` of the words with masked-LM predictions.

    Args:
        aug_p: Fraction of words to change.
        tokenizer: The masked LM's tokenizer (must have a mask token).
        model: A ``*ForMaskedLM`` model in eval mode.
        top_k: How many whole-word predictions a replacement is drawn from.
        batch_size: Texts per forward pass.
        max_length: Token limit per text; masks past it are left unchanged.
    """

    def __init__(
        self,
        aug_p: float,
        tokenizer: Any,
        model: Any,
        *,
        top_k: int = 10,
        batch_size: int = 16,
        max_length: int = 256,
    ) -> None:
        self.aug_p = check_aug_p(aug_p)
        if tokenizer.mask_token is None:
            raise ComponentUnavailableError("contextual augmentation: the tokenizer has no mask token")
        self.tokenizer, self.model = tokenizer, model
        self.top_k, self.batch_size, self.max_length = top_k, batch_size, max_length
        self._special = set(tokenizer.all_special_ids)
        self._surface: dict[int, str | None] = {}

    @classmethod
    def from_resources(cls, aug_p: float, resources: AugmentResources) -> MaskedLMSubstitution:
        tokenizer, model = load_local_checkpoint(
            resources.mlm_model,
            "AutoModelForMaskedLM",
            what="contextual augmentation needs a local masked-LM checkpoint",
            hint=MLM_HINT,
            device=resources.device,
        )
        return cls(aug_p, tokenizer, model)

    def augment(self, texts: list[str], rng: random.Random) -> list[str]:
        mask = self.tokenizer.mask_token
        plans: list[tuple[list[str], list[int]]] = []
        for text in texts:
            words = text.split()
            # A literal mask token in the input would shift the mask-to-word mapping.
            eligible = (
                [] if mask in text else [i for i, w in enumerate(words) if substitutable(split_core(w)[1])]
            )
            count = min(num_changes(len(words), self.aug_p), len(eligible))
            plans.append((words, sorted(rng.sample(eligible, count))))
        out = [" ".join(words) for words, _ in plans]
        todo = [k for k, (_, chosen) in enumerate(plans) if chosen]
        for start in range(0, len(todo), self.batch_size):
            batch = todo[start : start + self.batch_size]
            for k, predictions in zip(batch, self._predict([plans[k] for k in batch]), strict=True):
                words, chosen = plans[k]
                new = list(words)
                for i, candidates in zip(chosen, predictions, strict=False):  # fewer if truncated
                    lead, core, trail = split_core(words[i])
                    candidates = [c for c in candidates if _fits(c, core)][: self.top_k]
                    if candidates:
                        new[i] = lead + match_case(core, rng.choice(candidates)) + trail
                out[k] = " ".join(new)
        return out

    def _predict(self, plans: list[tuple[list[str], list[int]]]) -> list[list[list[str]]]:
        """Whole-word predictions, best first, for each mask of each masked text."""
        import torch

        mask = self.tokenizer.mask_token
        masked = []
        for words, chosen in plans:
            parts = list(words)
            for i in chosen:
                lead, _, trail = split_core(words[i])
                parts[i] = lead + mask + trail
            masked.append(" ".join(parts))
        device = next(self.model.parameters()).device
        enc = self.tokenizer(
            masked, return_tensors="pt", padding=True, truncation=True, max_length=self.max_length
        )
        with torch.no_grad():
            logits = self.model(**enc.to(device)).logits  # (B, L, V)
        shortlist = min(logits.shape[-1], self.top_k * 5 + 1)  # room for filtered-out tokens
        results = []
        for b in range(len(masked)):
            positions = (enc["input_ids"][b] == self.tokenizer.mask_token_id).nonzero().flatten()
            top = logits[b, positions].topk(shortlist, dim=-1).indices.tolist()  # (M, S)
            results.append([[w for t in row if (w := self._word(t))] for row in top])
        return results

    def _word(self, token_id: int) -> str | None:
        if token_id not in self._surface:
            token = self.tokenizer.convert_ids_to_tokens(token_id)
            ok = token_id not in self._special and isinstance(token, str)
            self._surface[token_id] = whole_word(token) if ok else None
        return self._surface[token_id]


def _fits(candidate: str, original: str) -> bool:
    """A different word, and ASCII when the original is (no foreign-script swaps in English)."""
    return candidate.lower() != original.lower() and (candidate.isascii() or not original.isascii())
