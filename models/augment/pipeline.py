"""Composition of augmenters and the two augmentation modes of the paper (spec §2).

Augmentation works on copies: every function returns new ``Example`` objects (made with
``dataclasses.replace``) and never mutates its inputs, so augmentations cannot compound. Both
texts of a pair are augmented; labels are kept. The augmenters of ``config.pipeline`` are
applied in order to the same copy. Results are deterministic given (seed, epoch or step).

- ``mode="pipeline"``: :func:`epoch_examples` gives the train set plus one augmented copy per
  example, the copy refreshed every ``refresh_every`` epochs.
- ``mode="repeated"``: :func:`repeat_batch` gives ``repeated_aug - 1`` augmented copies of
  every example of a minibatch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from models.augment.base import Augmenter, AugmentResources, build_augmenter
from models.config import AugmentationConfig, KDConfig
from models.errors import ConfigError

if TYPE_CHECKING:
    from models.data import Example


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any parts, stable across processes (unlike ``hash``)."""
    digest = hashlib.sha256("|".join(map(repr, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def augment_examples(
    examples: Sequence[Example],
    config: AugmentationConfig | KDConfig,
    resources: AugmentResources | None = None,
    *,
    seed: int,
    epoch: int = 0,
    copies: int = 1,
) -> list[Example]:
    """Augmented copies of ``examples``: ``copies`` rounds, each over every example in order.

    Args:
        examples: Frozen dataclass examples (``text``, ``text_pair``, ``label``); left untouched.
        config: The augmentation settings (or a whole KD config).
        resources: What heavier augmenters need; caches built augmenters. None builds afresh.
        seed: Run seed.
        epoch: Epoch, refresh round or step, mixed into the seed.
        copies: How many augmented copies of each example.

    Returns:
        ``copies * len(examples)`` new examples, copy-major: all of copy 0, then copy 1, ...

    Raises:
        ConfigError: Bad ``copies``, or conflicting checkpoint folders in config and resources.
        TypeError: An example is not a dataclass with string texts.
        ComponentUnavailableError: An augmenter lacks its resources.
    """
    cfg = _augmentation_config(config)
    if not isinstance(copies, int) or copies < 1:
        raise ConfigError(f"copies must be a positive integer, got {copies!r}")
    for example in examples:
        _check_example(example)
    augmenters = _augmenters(cfg, resources)
    paired = [i for i, e in enumerate(examples) if e.text_pair is not None]
    out: list[Example] = []
    for copy in range(copies):
        texts = [e.text for e in examples] + [examples[i].text_pair for i in paired]
        for key, augmenter in augmenters:
            rng = random.Random(derive_seed(seed, cfg.mode, epoch, copy, key))
            new = augmenter.augment(list(texts), rng)
            if len(new) != len(texts) or not all(isinstance(t, str) for t in new):
                raise RuntimeError(f"augmenter {key!r} must return one string per input text")
            texts = new
        pairs = dict(zip(paired, texts[len(examples) :], strict=True))
        out.extend(
            dataclasses.replace(e, text=texts[i], text_pair=pairs.get(i, e.text_pair))
            for i, e in enumerate(examples)
        )
    return out


def epoch_examples(
    train: Sequence[Example],
    config: AugmentationConfig | KDConfig,
    resources: AugmentResources | None = None,
    *,
    seed: int,
    epoch: int,
) -> list[tuple[Example, bool]]:
    """The examples of one epoch as ``(example, is_augmented)``.

    In ``pipeline`` mode with a non-empty pipeline: the originals, then one augmented copy of
    each, the copies redrawn every ``refresh_every`` epochs (and cached on ``resources`` in
    between). Otherwise the originals only (``repeated`` mode augments per batch).
    """
    cfg = _augmentation_config(config)
    originals = [(e, False) for e in train]
    if not cfg.enabled or cfg.mode != "pipeline":
        return originals
    refresh = epoch // cfg.refresh_every
    key = (cfg, seed, refresh, tuple(train))
    cached = resources._train_copy if resources is not None else None
    if cached is not None and cached[0] == key:
        copies = cached[1]
    else:
        copies = augment_examples(train, cfg, resources, seed=seed, epoch=refresh)
        if resources is not None:
            resources._train_copy = (key, copies)
    return originals + [(e, True) for e in copies]


def repeat_batch(
    batch_examples: Sequence[Example],
    config: AugmentationConfig | KDConfig,
    resources: AugmentResources | None = None,
    *,
    seed: int,
    step: int,
) -> list[Example]:
    """The ``repeated_aug - 1`` augmented copies of every example of a minibatch.

    Returns copy-major order (copy 0 of every example, then copy 1, ...); the originals are not
    included. Empty unless ``mode="repeated"`` with a non-empty pipeline.
    """
    cfg = _augmentation_config(config)
    if not cfg.enabled or cfg.mode != "repeated" or not batch_examples:
        return []
    return augment_examples(
        batch_examples, cfg, resources, seed=seed, epoch=step, copies=cfg.repeated_aug - 1
    )


def _augmentation_config(config: AugmentationConfig | KDConfig) -> AugmentationConfig:
    if isinstance(config, KDConfig):
        return config.augmentation
    if not isinstance(config, AugmentationConfig):
        raise TypeError(f"expected an AugmentationConfig or KDConfig, got {type(config).__name__}")
    return config


def _check_example(example: Any) -> None:
    if not dataclasses.is_dataclass(example) or isinstance(example, type):
        raise TypeError(
            f"examples must be dataclass instances (models.data.Example), got {type(example).__name__}"
        )
    if not isinstance(example.text, str) or not (
        example.text_pair is None or isinstance(example.text_pair, str)
    ):
        raise TypeError(f"example texts must be strings (text_pair may be None): {example!r}")


def _pick(from_config: Any, from_resources: Any, name: str) -> Any:
    if from_config is not None and from_resources is not None and from_config != from_resources:
        raise ConfigError(
            f"augmentation.{name}={from_config!r} conflicts with AugmentResources.{name}={from_resources!r}"
        )
    return from_config if from_config is not None else from_resources


def _augmenters(cfg: AugmentationConfig, resources: AugmentResources | None) -> list[tuple[str, Augmenter]]:
    """Build (or reuse from ``resources``) the pipeline's augmenters, in order."""
    res = resources if resources is not None else AugmentResources()
    mlm = _pick(cfg.mlm_model, res.mlm_model, "mlm_model")
    mt = _pick(cfg.translation_models, res.translation_models, "translation_models")
    build_res = res
    if (mlm, mt) != (res.mlm_model, res.translation_models):
        build_res = dataclasses.replace(res, mlm_model=mlm, translation_models=mt)
    out = []
    for key in cfg.pipeline:
        cache_key = (
            key,
            cfg.aug_p,
            mlm if key == "contextual" else None,
            mt if key == "backtranslation" else None,
        )
        if cache_key not in res._augmenters:
            res._augmenters[cache_key] = build_augmenter(key, aug_p=cfg.aug_p, resources=build_res)
        out.append((key, res._augmenters[cache_key]))
    return out
