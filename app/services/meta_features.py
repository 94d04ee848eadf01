"""Dataset meta-features for the service, computed without importing torch in the API process.

The torch-free features (sizes, labels, lengths in MiniLM word pieces, unknown-token rate) are
computed here. The sentence-embedding summary (``emb_*``) needs MiniLM in torch, so with
``embeddings="subprocess"`` it runs in one long-lived helper process (the model loads once) and
with ``embeddings="off"`` those features are left missing (None), never guessed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any, Literal

import numpy as np

from models.config import ModelDescriptor

EmbeddingMode = Literal["subprocess", "off"]


class MetaFeatureComputer:
    """Computes :func:`recommender.compute_meta_features` with the service's encoders.

    Args:
        embeddings: ``"subprocess"`` or ``"off"`` (see the module docstring).
        threads: torch threads of the embedding process.
    """

    def __init__(self, embeddings: EmbeddingMode = "subprocess", threads: int = 1) -> None:
        self.embeddings = embeddings
        self.threads = threads
        self._lock = threading.Lock()
        self._encoders: tuple[Callable[..., Any], Callable[..., Any]] | None = None
        self._pool: ProcessPoolExecutor | None = None

    def _text_encoders(self) -> tuple[Callable[..., Any], Callable[..., Any]]:
        with self._lock:
            if self._encoders is None:
                from models.encoders import unk_rate_fn, word_tokenizer

                self._encoders = (word_tokenizer(), unk_rate_fn())
            return self._encoders

    def _embed(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            if self._pool is None:
                from app.services import embedding_worker

                self._pool = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=get_context("spawn"),
                    initializer=embedding_worker.init,
                    initargs=(self.threads,),
                )
            pool = self._pool
        from app.services import embedding_worker

        return pool.submit(embedding_worker.embed, texts).result()

    def compute(
        self, dataset: Any, *, teacher: ModelDescriptor | None = None, teacher_score: float | None = None
    ) -> dict[str, float | None]:
        """Every meta-feature of ``dataset`` as a plain dict."""
        from recommender import compute_meta_features

        tokenize, unk_rate = self._text_encoders()
        embed = self._embed if self.embeddings == "subprocess" else None
        features = compute_meta_features(
            dataset,
            tokenize=tokenize,
            unk_rate=unk_rate,
            embed=embed,
            teacher=teacher,
            teacher_score=teacher_score,
        )
        return dict(features)

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None


def with_teacher(
    meta_features: dict[str, float | None], teacher: ModelDescriptor | None, teacher_score: float | None
) -> dict[str, float | None]:
    """A dataset's meta-features completed with the teacher features of a given teacher."""
    from recommender.meta_features import teacher_features

    return {**meta_features, **teacher_features(teacher, teacher_score)}
