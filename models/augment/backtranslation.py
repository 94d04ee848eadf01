"""Back-translation: en -> pivot -> en with two local MarianMT checkpoints (paper: en->fr->en).

Decoding is greedy, so a text always back-translates the same way: the augmenter ignores the
random generator and ``aug_p`` (it paraphrases the whole text, as the paper's nlpaug
``BackTranslationAug`` did). An empty round trip keeps the original text, since an empty
training text is useless. Both folders load with ``local_files_only=True`` through
``AutoModelForSeq2SeqLM``. Example config::

    {"pipeline": ["backtranslation", "random"], "aug_p": 0.1,
     "translation_models": ["/ckpt/opus-mt-en-fr", "/ckpt/opus-mt-fr-en"]}
"""

from __future__ import annotations

import random
from typing import Any

from models.augment.base import AUGMENTERS, AugmentResources, check_aug_p
from models.augment.checkpoints import load_local_checkpoint
from models.errors import ComponentUnavailableError

MT_HINT = (
    "set augmentation.translation_models (AugmentResources.translation_models) to two local "
    "MarianMT folders (en->pivot, pivot->en)"
)


@AUGMENTERS.register("backtranslation")
class BackTranslation:
    """Paraphrase texts by translating them to a pivot language and back.

    Args:
        aug_p: Accepted for the common signature; back-translation rewrites whole texts.
        forward: ``(tokenizer, model)`` translating en -> pivot.
        backward: ``(tokenizer, model)`` translating pivot -> en.
        batch_size: Texts per ``generate`` call.
        max_length: Token limit of inputs and of generated translations.
    """

    def __init__(
        self,
        aug_p: float,
        forward: tuple[Any, Any],
        backward: tuple[Any, Any],
        *,
        batch_size: int = 16,
        max_length: int = 256,
    ) -> None:
        self.aug_p = check_aug_p(aug_p)
        self.forward, self.backward = forward, backward
        self.batch_size, self.max_length = batch_size, max_length

    @classmethod
    def from_resources(cls, aug_p: float, resources: AugmentResources) -> BackTranslation:
        folders = resources.translation_models
        if folders is None or len(folders) != 2:
            raise ComponentUnavailableError(
                f"back-translation needs two local MarianMT checkpoints, got {folders!r}; {MT_HINT}"
            )
        loaded = [
            load_local_checkpoint(
                folder,
                "AutoModelForSeq2SeqLM",
                what=f"back-translation {direction} model",
                hint=MT_HINT,
                device=resources.device,
            )
            for direction, folder in zip(("en->pivot", "pivot->en"), folders, strict=True)
        ]
        return cls(aug_p, loaded[0], loaded[1])

    def augment(self, texts: list[str], rng: random.Random) -> list[str]:
        del rng  # greedy decoding is deterministic
        back = self.translate(self.translate(texts, *self.forward), *self.backward)
        return [b.strip() or t for b, t in zip(back, texts, strict=True)]

    def translate(self, texts: list[str], tokenizer: Any, model: Any) -> list[str]:
        """Greedy-decode ``texts`` with one translation model, in batches."""
        import torch

        device = next(model.parameters()).device
        # Never decode past the model's position table (sinusoidal tables have a fixed size).
        positions = getattr(model.config, "max_position_embeddings", None)
        limit = min(self.max_length, positions) if positions else self.max_length
        out: list[str] = []
        for start in range(0, len(texts), self.batch_size):
            chunk = texts[start : start + self.batch_size]
            enc = tokenizer(chunk, return_tensors="pt", padding=True, truncation=True, max_length=limit)
            with torch.no_grad():
                # Only ids and mask: seq2seq models reject token_type_ids some tokenizers add.
                ids = model.generate(
                    input_ids=enc["input_ids"].to(device),
                    attention_mask=enc["attention_mask"].to(device),
                    max_new_tokens=limit,
                    num_beams=1,
                    do_sample=False,
                )
            out.extend(tokenizer.batch_decode(ids, skip_special_tokens=True))
        return out
