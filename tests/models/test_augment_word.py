"""Word-level augmenters (random swap, delete, insert), the registry and the shared helpers."""

import random
from collections import Counter

import pytest

from models.augment import AUGMENTERS, AugmentResources, build_augmenter, num_changes
from models.augment.base import match_case, split_core
from models.config import AUGMENTERS as CONFIG_AUGMENTERS
from models.errors import ConfigError, UnknownKeyError

TEXT = " ".join(f"w{i}" for i in range(20))  # 20 distinct words


def test_registry_keys_match_config():
    assert sorted(AUGMENTERS.keys()) == sorted(CONFIG_AUGMENTERS)


def test_unknown_key_lists_known_keys():
    with pytest.raises(UnknownKeyError, match="known: backtranslation, contextual"):
        build_augmenter("shuffle", aug_p=0.1, resources=AugmentResources())


@pytest.mark.parametrize("aug_p", [0.0, -0.1, 1.5, True, "0.1"])
def test_bad_aug_p_rejected(aug_p):
    with pytest.raises(ConfigError, match="aug_p"):
        build_augmenter("random", aug_p=aug_p, resources=AugmentResources())


@pytest.mark.parametrize(
    ("n", "aug_p", "expected"),
    [
        (0, 0.5, 0),
        (1, 0.1, 0),
        (1, 0.5, 1),
        (2, 0.1, 1),
        (10, 0.1, 1),
        (10, 0.3, 3),
        (20, 0.5, 10),
        (7, 1.0, 7),
    ],
)
def test_num_changes(n, aug_p, expected):
    assert num_changes(n, aug_p) == expected


def test_split_core_and_case():
    assert split_core('("Movie").') == ('("', "Movie", '").')
    assert split_core("...") == ("...", "", "")
    assert match_case("Movie", "film") == "Film"
    assert match_case("MOVIE", "film") == "FILM"
    assert match_case("movie", "Film") == "Film"


@pytest.mark.parametrize("aug_p", [0.1, 0.3, 0.5])
def test_delete_removes_aug_p_of_words(aug_p):
    aug = build_augmenter("delete", aug_p=aug_p)
    out = aug.augment([TEXT], random.Random(0))[0].split()
    assert len(out) == 20 - round(20 * aug_p)
    # The survivors keep their order.
    assert out == [w for w in TEXT.split() if w in set(out)]


def test_delete_never_empties_text():
    aug = build_augmenter("delete", aug_p=1.0)
    for text in ["one", "one two", "a b c d"]:
        out = aug.augment([text], random.Random(1))[0]
        assert len(out.split()) >= 1
        assert set(out.split()) <= set(text.split())
    assert aug.augment([""], random.Random(1)) == [""]


@pytest.mark.parametrize("aug_p", [0.1, 0.3, 0.5])
def test_insert_adds_copies_of_own_words(aug_p):
    aug = build_augmenter("insert", aug_p=aug_p)
    out = aug.augment([TEXT], random.Random(0))[0].split()
    assert len(out) == 20 + round(20 * aug_p)
    assert set(out) == set(TEXT.split())
    extra = Counter(out) - Counter(TEXT.split())
    assert sum(extra.values()) == round(20 * aug_p)


@pytest.mark.parametrize("aug_p", [0.1, 0.3, 0.5])
@pytest.mark.parametrize("seed", range(5))
def test_swap_moves_words_to_neighbours(aug_p, seed):
    aug = build_augmenter("random", aug_p=aug_p)
    words = TEXT.split()
    out = aug.augment([TEXT], random.Random(seed))[0].split()
    assert sorted(out) == sorted(words)  # a permutation
    moved = [i for i, w in enumerate(out) if w != words[i]]
    k = round(20 * aug_p)
    assert k + 1 <= len(moved) <= 2 * k  # k distinct adjacent swaps never undo each other
    # Every word moves by at most k positions (k swaps of neighbours).
    assert all(abs(out.index(w) - i) <= k for i, w in enumerate(words))


def test_swap_single_word_unchanged_and_two_words_swapped():
    aug = build_augmenter("random", aug_p=0.1)
    assert aug.augment(["alone", "left right"], random.Random(0)) == ["alone", "right left"]


@pytest.mark.parametrize("key", ["random", "delete", "insert"])
def test_reproducible_under_seed_and_inputs_untouched(key):
    aug = build_augmenter(key, aug_p=0.3)
    texts = [TEXT, "the quick brown fox jumps over the lazy dog"]
    before = list(texts)
    a = aug.augment(texts, random.Random(7))
    b = aug.augment(texts, random.Random(7))
    c = aug.augment(texts, random.Random(8))
    assert texts == before
    assert a == b
    assert a != c
    assert all(x != y for x, y in zip(a, texts, strict=True))
