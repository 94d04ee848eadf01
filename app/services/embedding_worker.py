"""Runs in the meta-feature helper process: holds one sentence encoder, loaded at start-up."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# This process's encoder (a model, not a cache of results): set once by init().
_embedder: Callable[[list[str]], np.ndarray] | None = None


def init(threads: int) -> None:
    global _embedder
    import torch

    from models.encoders import sentence_embedder

    torch.set_num_threads(threads)
    _embedder = sentence_embedder()


def embed(texts: list[str]) -> np.ndarray:
    if _embedder is None:
        raise RuntimeError("embedding_worker.init was not called in this process")
    return _embedder(texts)
