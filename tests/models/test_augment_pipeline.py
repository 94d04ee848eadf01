"""Augmentation pipeline: copies never alias or mutate the source, pairs and single texts,
determinism, the two modes (pipeline / repeated) and their counts."""

import copy
import dataclasses

import pytest

from models.augment import (
    AugmentResources,
    augment_examples,
    derive_seed,
    epoch_examples,
    num_changes,
    repeat_batch,
)
from models.config import AugmentationConfig, KDConfig
from models.data import Example
from models.errors import ConfigError

TRAIN = [
    Example("the movie was a wonderful surprise with brilliant actors", None, "pos"),
    Example("a dull and lifeless plot that goes nowhere", None, "neg"),
    Example("great cast and a clever script", "the story felt thin and boring overall", "pos"),
    Example("fine film overall", "terrible music and a silly ending ruin it", 0.25),
]
WORD_PIPELINE = AugmentationConfig(pipeline=("insert", "random"), aug_p=0.3)


def _words_changed(a: str, b: str) -> bool:
    return a != b and sorted(set(b.split())) == sorted(set(a.split()))


def test_copies_are_new_objects_and_sources_untouched():
    before = copy.deepcopy(TRAIN)
    ids = [id(e) for e in TRAIN]
    out = augment_examples(TRAIN, WORD_PIPELINE, seed=0)
    assert before == TRAIN and [id(e) for e in TRAIN] == ids
    assert len(out) == len(TRAIN)
    for orig, new in zip(TRAIN, out, strict=True):
        assert new is not orig and type(new) is type(orig)
        assert new.label == orig.label
        assert _words_changed(orig.text, new.text)  # insert + swap only reuse the text's own words
        if orig.text_pair is None:
            assert new.text_pair is None
        else:
            assert _words_changed(orig.text_pair, new.text_pair)


def test_augmentations_do_not_compound():
    # Augmenting twice from the same source gives the same result: nothing was written back.
    first = augment_examples(TRAIN, WORD_PIPELINE, seed=1)
    second = augment_examples(TRAIN, WORD_PIPELINE, seed=1)
    assert first == second
    # A delete-only pipeline removes exactly round(aug_p * n) words from the ORIGINAL each time.
    cfg = AugmentationConfig(pipeline=("delete",), aug_p=0.3)
    for epoch in range(3):
        out = augment_examples(TRAIN, cfg, seed=1, epoch=epoch)
        lengths = [len(e.text.split()) for e in TRAIN]
        assert [len(e.text.split()) for e in out] == [n - num_changes(n, 0.3) for n in lengths]


def test_pipeline_applies_augmenters_in_order():
    # delete then insert keeps the length; each order is reproducible and differs from the other.
    a = augment_examples(TRAIN, AugmentationConfig(pipeline=("delete", "insert"), aug_p=0.5), seed=2)
    b = augment_examples(TRAIN, AugmentationConfig(pipeline=("insert", "delete"), aug_p=0.5), seed=2)
    for orig, x, y in zip(TRAIN, a, b, strict=True):
        n = len(orig.text.split())
        after_delete, after_insert = n - num_changes(n, 0.5), n + num_changes(n, 0.5)
        assert len(x.text.split()) == after_delete + num_changes(after_delete, 0.5)
        assert len(y.text.split()) == after_insert - num_changes(after_insert, 0.5)
    assert a != b


def test_reproducible_under_seed_and_epoch():
    base = augment_examples(TRAIN, WORD_PIPELINE, seed=5, epoch=1)
    assert base == augment_examples(TRAIN, WORD_PIPELINE, seed=5, epoch=1)
    assert base != augment_examples(TRAIN, WORD_PIPELINE, seed=6, epoch=1)
    assert base != augment_examples(TRAIN, WORD_PIPELINE, seed=5, epoch=2)


def test_copies_are_copy_major_and_distinct():
    out = augment_examples(TRAIN, WORD_PIPELINE, seed=0, copies=3)
    assert len(out) == 3 * len(TRAIN)
    for c in range(3):
        assert [e.label for e in out[c * 4 : (c + 1) * 4]] == [e.label for e in TRAIN]
    assert out[0].text != out[4].text != out[8].text


def test_empty_pipeline_gives_plain_copies_and_empty_input_gives_nothing():
    assert augment_examples([], WORD_PIPELINE, seed=0) == []
    out = augment_examples(TRAIN[:1], AugmentationConfig(), seed=0)
    assert out == TRAIN[:1] and out[0] is not TRAIN[0]


def test_pipeline_mode_epoch_examples_and_refresh():
    cfg = AugmentationConfig(pipeline=("random",), aug_p=0.3, mode="pipeline", refresh_every=2)
    res = AugmentResources()
    epochs = [epoch_examples(TRAIN, cfg, res, seed=0, epoch=e) for e in range(4)]
    for items in epochs:
        assert len(items) == 2 * len(TRAIN)
        assert [ex for ex, aug in items if not aug] == TRAIN
        assert all(aug for _, aug in items[len(TRAIN) :])
    copies = [[ex for ex, aug in items if aug] for items in epochs]
    assert copies[0] == copies[1]  # same refresh round
    assert copies[1] != copies[2]  # refreshed
    assert copies[2] == copies[3]
    # Stateless and cached give the same result.
    assert epoch_examples(TRAIN, cfg, None, seed=0, epoch=3) == epochs[3]


def test_pipeline_mode_caches_copy_on_resources(monkeypatch):
    cfg = AugmentationConfig(pipeline=("random",), aug_p=0.3, refresh_every=3)
    res = AugmentResources()
    calls = []
    import models.augment.pipeline as pipeline

    real = pipeline.augment_examples
    monkeypatch.setattr(
        pipeline, "augment_examples", lambda *a, **k: calls.append(k["epoch"]) or real(*a, **k)
    )
    for epoch in range(6):
        pipeline.epoch_examples(TRAIN, cfg, res, seed=0, epoch=epoch)
    assert calls == [0, 1]  # one augmentation per refresh round


def test_no_augmentation_in_other_modes():
    repeated = AugmentationConfig(pipeline=("random",), mode="repeated", repeated_aug=3)
    assert epoch_examples(TRAIN, repeated, None, seed=0, epoch=0) == [(e, False) for e in TRAIN]
    assert epoch_examples(TRAIN, AugmentationConfig(), None, seed=0, epoch=0) == [(e, False) for e in TRAIN]
    assert repeat_batch(TRAIN, AugmentationConfig(pipeline=("random",)), None, seed=0, step=0) == []


@pytest.mark.parametrize("r", [2, 4])
def test_repeated_mode_counts_and_single_sentence_tasks(r):
    cfg = KDConfig(
        augmentation=AugmentationConfig(pipeline=("random",), aug_p=0.3, mode="repeated", repeated_aug=r)
    )
    singles = [e for e in TRAIN if e.text_pair is None]
    before = copy.deepcopy(singles)
    out = repeat_batch(singles, cfg, None, seed=0, step=7)
    assert len(out) == (r - 1) * len(singles)
    assert before == singles
    for k, new in enumerate(out):
        orig = singles[k % len(singles)]
        assert new.label == orig.label and new.text_pair is None and _words_changed(orig.text, new.text)
    assert out == repeat_batch(singles, cfg, None, seed=0, step=7)
    assert out != repeat_batch(singles, cfg, None, seed=0, step=8)
    pairs = repeat_batch(TRAIN, cfg, None, seed=0, step=7)
    assert all(
        _words_changed(o.text_pair, n.text_pair)
        for o, n in zip(TRAIN * (r - 1), pairs, strict=True)
        if o.text_pair
    )


def test_bad_inputs_are_refused():
    with pytest.raises(ConfigError, match="copies"):
        augment_examples(TRAIN, WORD_PIPELINE, seed=0, copies=0)
    with pytest.raises(TypeError, match="dataclass"):
        augment_examples([("text", None, "pos")], WORD_PIPELINE, seed=0)
    with pytest.raises(TypeError, match="strings"):
        augment_examples([dataclasses.replace(TRAIN[0], text=None)], WORD_PIPELINE, seed=0)
    with pytest.raises(TypeError, match="AugmentationConfig"):
        augment_examples(TRAIN, {"pipeline": ["random"]}, seed=0)


def test_conflicting_checkpoint_folders_refused():
    cfg = AugmentationConfig(pipeline=("random",), mlm_model="/a")
    with pytest.raises(ConfigError, match="conflicts with AugmentResources.mlm_model"):
        augment_examples(TRAIN, cfg, AugmentResources(mlm_model="/b"), seed=0)


def test_derive_seed_is_stable():
    assert derive_seed(1, "pipeline", 0) == derive_seed(1, "pipeline", 0)
    assert derive_seed(1, "pipeline", 0) != derive_seed(1, "pipeline", 1)
    assert 0 <= derive_seed("x") < 2**63
