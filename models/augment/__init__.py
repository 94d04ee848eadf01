"""Data augmentation for KD (spec §2): augmenters by registry key and the two modes.

Importing this package registers every augmenter of ``models.config.AUGMENTERS`` without
importing torch; the model-based augmenters (contextual, backtranslation) load it when built.
"""

from models.augment import backtranslation, contextual, embedding, synonym, word  # noqa: F401  (register)
from models.augment.base import AUGMENTERS, Augmenter, AugmentResources, build_augmenter, num_changes
from models.augment.pipeline import augment_examples, derive_seed, epoch_examples, repeat_batch

__all__ = [
    "AUGMENTERS",
    "AugmentResources",
    "Augmenter",
    "augment_examples",
    "build_augmenter",
    "derive_seed",
    "epoch_examples",
    "num_changes",
    "repeat_batch",
]
