"""WordNet synonym substitution (EDA-style), without a POS tagger.

NLTK's POS tagger is not available offline, so instead of choosing synonyms of the tagged part
of speech, a word is eligible when it is an alphabetic non-stopword with at least one WordNet
synonym (over all parts of speech); the synonym keeps the word's surface case and punctuation.
WordNet 3.0 is read with NLTK's corpus reader from a folder in NLTK layout
(``<dir>/corpora/wordnet/``), by default the offline copy from ``models.assets.wordnet_dir()``.
Example config: ``{"pipeline": ["synonym"], "aug_p": 0.1}``.
"""

from __future__ import annotations

import functools
import random
import warnings
from pathlib import Path
from typing import Any

from models.augment.base import (
    AUGMENTERS,
    AugmentResources,
    check_aug_p,
    match_case,
    num_changes,
    split_core,
    substitutable,
)
from models.availability import wordnet_problem
from models.errors import AssetMissingError, ComponentUnavailableError


def load_wordnet(wordnet_dir: str | Path | None) -> Any:
    """Open WordNet with NLTK's reader; never downloads.

    Args:
        wordnet_dir: Folder holding ``corpora/wordnet``; None prepares the packaged copy via
            ``models.assets.wordnet_dir()``.

    Returns:
        An ``nltk.corpus.reader.wordnet.WordNetCorpusReader``.

    Raises:
        ComponentUnavailableError: WordNet cannot be found or is malformed.
    """
    if wordnet_dir is None:
        from models import assets

        try:
            wordnet_dir = assets.wordnet_dir()
        except AssetMissingError as exc:
            raise ComponentUnavailableError(
                f"synonym augmentation needs WordNet: {exc.message}; or set wordnet_dir to a folder "
                "holding corpora/wordnet in NLTK layout"
            ) from exc
    root = Path(wordnet_dir).resolve()
    problem = wordnet_problem(root)
    if problem:
        raise ComponentUnavailableError(f"synonym augmentation needs WordNet: {problem}")
    return _open_wordnet(str(root))


# Process-wide: reading the WordNet index takes seconds and the reader is read-only data,
# so every synonym augmenter over the same folder shares one (like NLTK's own corpus loader).
@functools.lru_cache(maxsize=2)
def _open_wordnet(root: str) -> Any:
    import nltk.data
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class EnglishWordNet(WordNetCorpusReader):
        """NLTK's reader without the multilingual (OMW) machinery we never use."""

        def map_wn(self, version: str = "wordnet") -> None:
            # The base class re-reads index.sense twice to map WordNet 3.0 onto itself for OMW
            # data: half of the load time, and useless for English synonyms.
            return None

    # NLTK >= 3.10 only opens corpora under a root listed in nltk.data.path.
    if root not in nltk.data.path:
        nltk.data.path.append(root)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The multilingual functions are not available")
        return EnglishWordNet(str(Path(root) / "corpora" / "wordnet"), None)


@AUGMENTERS.register("synonym")
class WordNetSynonym:
    """Replace about ``aug_p`` of the words with a random WordNet synonym.

    Args:
        aug_p: Fraction of words to change (only eligible words are changed, so fewer when the
            text has few content words).
        wordnet: A loaded WordNet reader (see :func:`load_wordnet`).
    """

    def __init__(self, aug_p: float, wordnet: Any) -> None:
        self.aug_p = check_aug_p(aug_p)
        self.wordnet = wordnet
        self._synonyms: dict[str, tuple[str, ...]] = {}

    @classmethod
    def from_resources(cls, aug_p: float, resources: AugmentResources) -> WordNetSynonym:
        return cls(aug_p, load_wordnet(resources.wordnet_dir))

    def synonyms(self, word: str) -> tuple[str, ...]:
        """Distinct synonyms of ``word`` (lower case), in WordNet order, excluding the word."""
        key = word.lower()
        if key not in self._synonyms:
            found: list[str] = []
            for synset in self.wordnet.synsets(key):
                for name in synset.lemma_names():
                    lemma = name.replace("_", " ")
                    if lemma.lower() != key and lemma not in found and _plain(lemma):
                        found.append(lemma)
            self._synonyms[key] = tuple(found)
        return self._synonyms[key]

    def augment(self, texts: list[str], rng: random.Random) -> list[str]:
        return [self._augment_one(text, rng) for text in texts]

    def _augment_one(self, text: str, rng: random.Random) -> str:
        words = text.split()
        eligible = [i for i, w in enumerate(words) if substitutable(split_core(w)[1])]
        eligible = [i for i in eligible if self.synonyms(split_core(words[i])[1])]
        count = min(num_changes(len(words), self.aug_p), len(eligible))
        out = list(words)
        for i in sorted(rng.sample(eligible, count)):
            lead, core, trail = split_core(words[i])
            out[i] = lead + match_case(core, rng.choice(self.synonyms(core))) + trail
        return " ".join(out)


def _plain(lemma: str) -> bool:
    # Drops lemmas such as "u.s." or "1st" that read badly inside a sentence.
    return all(ch.isalpha() or ch in " -'" for ch in lemma)
