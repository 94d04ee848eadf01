"""The augmenter contract, its registry, the injected resources and shared word helpers.

Every augmenter maps a batch of texts to a batch of NEW texts under a caller-owned
``random.Random``, so the pipeline decides seeding and the augmenters stay stateless apart from
caches of expensive look-ups (synonyms, embedding neighbours, loaded checkpoints).
Torch-free: the heavier augmenters import torch/transformers inside their builders.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from models.errors import ConfigError
from models.registry import Registry

if TYPE_CHECKING:
    import numpy as np
    import torch


@runtime_checkable
class Augmenter(Protocol):
    """Anything that rewrites a batch of texts."""

    def augment(self, texts: list[str], rng: random.Random) -> list[str]:
        """Return one new text per input text, in order; never modifies the inputs."""
        ...


@dataclass
class AugmentResources:
    """What the heavier augmenters need; the trainer injects it.

    Attributes:
        embedding_matrix: The teacher's input-embedding table, shape (V, d) (``embedding``).
        tokenizer: The teacher's Hugging Face tokenizer, matching ``embedding_matrix``.
        mlm_model: Folder of a local masked-LM checkpoint (``contextual``).
        translation_models: Folders of two local MarianMT checkpoints, (en->pivot, pivot->en)
            (``backtranslation``).
        wordnet_dir: A folder holding ``corpora/wordnet/`` in NLTK layout (``synonym``); None
            means the offline copy prepared by ``models.assets.wordnet_dir()``.
        device: Torch device for the model-based augmenters.

    The pipeline also caches on this object the augmenters it built and the latest augmented
    copy of the train set, so one instance should serve a whole training run (and no longer).
    """

    embedding_matrix: np.ndarray | torch.Tensor | None = None
    tokenizer: Any = None
    mlm_model: str | None = None
    translation_models: tuple[str, str] | None = None
    wordnet_dir: str | None = None
    device: str = "cpu"
    _augmenters: dict[tuple, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    _train_copy: tuple[tuple, list[Any]] | None = field(default=None, init=False, repr=False, compare=False)


# Registered objects are classes with a ``from_resources(aug_p, resources)`` classmethod.
AUGMENTERS: Registry[Any] = Registry("augmenter")


def build_augmenter(key: str, *, aug_p: float, resources: AugmentResources | None = None) -> Augmenter:
    """Build the augmenter registered under ``key``.

    Args:
        key: One of ``models.config.AUGMENTERS``.
        aug_p: Fraction of words to change, in (0, 1].
        resources: Checkpoints, tables and tokenizers the augmenter may need.

    Returns:
        A ready augmenter; model-based ones have loaded their checkpoints already.

    Raises:
        UnknownKeyError: ``key`` is not registered.
        ConfigError: ``aug_p`` is outside (0, 1].
        ComponentUnavailableError: A resource the augmenter needs is missing.
    """
    cls = AUGMENTERS.get(key)
    check_aug_p(aug_p)
    return cls.from_resources(aug_p, resources if resources is not None else AugmentResources())


def check_aug_p(aug_p: float) -> float:
    """Validate a fraction of words to change.

    Raises:
        ConfigError: ``aug_p`` is not a number in (0, 1].
    """
    if isinstance(aug_p, bool) or not isinstance(aug_p, int | float) or not 0.0 < aug_p <= 1.0:
        raise ConfigError(f"aug_p must be a number in (0, 1], got {aug_p!r}")
    return float(aug_p)


def num_changes(num_words: int, aug_p: float) -> int:
    """How many words to change: round(aug_p * n), and at least one when n >= 2."""
    count = int(aug_p * num_words + 0.5)
    if num_words >= 2:
        count = max(1, count)
    return min(count, num_words)


# A whitespace token is split into leading punctuation, a core and trailing punctuation, so
# substitutions replace "movie" inside "(movie)." and keep the punctuation around it.
_CORE_RE = re.compile(r"^(\W*)(.*?)(\W*)$", re.DOTALL)


def split_core(token: str) -> tuple[str, str, str]:
    """Split a whitespace token into (leading punctuation, core word, trailing punctuation)."""
    match = _CORE_RE.match(token)
    assert match is not None  # the pattern matches every string
    return match.group(1), match.group(2), match.group(3)


def match_case(original: str, replacement: str) -> str:
    """Give ``replacement`` the surface case of ``original`` (lower, Capitalised or UPPER)."""
    if len(original) > 1 and original.isupper():
        return replacement.upper()
    if original[:1].isupper():
        return replacement[:1].upper() + replacement[1:]
    return replacement


# Function words carry little content; substituting them mostly breaks grammar. Our own short
# list, because NLTK's stopwords corpus is not available offline.
_STOPWORD_TEXT = """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers herself him himself his how i if in into is it its itself
    just me might more most must my myself no nor not now of off on once only or other our ours
    ourselves out over own same shall she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


# Word-start markers of SentencePiece ("▁") and byte-level BPE ("Ġ") vocabularies.
_WORD_START_MARKERS = "\u2581\u0120"


def whole_word(token: str) -> str | None:
    """The word a vocabulary token spells, or None for "##" pieces and non-alphabetic tokens."""
    if token.startswith("##"):
        return None
    word = token.lstrip(_WORD_START_MARKERS)
    return word if word.isalpha() else None


def substitutable(core: str) -> bool:
    """Whether a word core may be replaced by a synonym or neighbour (alphabetic content word)."""
    return core.isalpha() and core.lower() not in STOPWORDS
