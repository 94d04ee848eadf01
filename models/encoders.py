"""Small offline encoders that meta-features and the service inject as callables.

``word_tokenizer`` is torch-free (the Rust ``tokenizers`` library reading ``tokenizer.json``);
``sentence_embedder`` imports torch lazily, on first call.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from models.errors import AssetMissingError


def _default_encoder_dir() -> Path:
    from models.assets import minilm_path

    return Path(minilm_path())


def _load_fast_tokenizer(path: str | Path | None):
    from tokenizers import Tokenizer

    folder = Path(path) if path else _default_encoder_dir()
    file = folder / "tokenizer.json"
    if not file.is_file():
        raise AssetMissingError(f"no tokenizer.json in {folder}")
    tok = Tokenizer.from_file(str(file))
    tok.no_padding()
    tok.no_truncation()
    return tok


def word_tokenizer(path: str | Path | None = None) -> Callable[[list[str]], list[list[str]]]:
    """Return a function mapping texts to their subword tokens (special tokens excluded).

    Args:
        path: A model folder with ``tokenizer.json``; default MiniLM-L6.
    """
    tok = _load_fast_tokenizer(path)

    def tokenize(texts: list[str]) -> list[list[str]]:
        return [enc.tokens for enc in tok.encode_batch(list(texts), add_special_tokens=False)]

    return tokenize


def unk_rate_fn(path: str | Path | None = None) -> Callable[[list[str]], float]:
    """Return a function giving the fraction of subword tokens that are the unknown token."""
    tok = _load_fast_tokenizer(path)
    unk_id = tok.token_to_id("[UNK]")
    if unk_id is None:
        unk_id = tok.token_to_id("<unk>")

    def unk_rate(texts: list[str]) -> float:
        ids = [i for enc in tok.encode_batch(list(texts), add_special_tokens=False) for i in enc.ids]
        return float(np.mean([i == unk_id for i in ids])) if ids else 0.0

    return unk_rate


def sentence_embedder(
    path: str | Path | None = None, *, max_length: int = 128, batch_size: int = 64
) -> Callable[[list[str]], np.ndarray]:
    """Return a function mapping texts to L2-normalised mean-pooled sentence embeddings (N, d).

    The model loads on the first call (torch is imported then, not at import time).
    """
    state: dict = {}

    def embed(texts: list[str]) -> np.ndarray:
        import torch
        from transformers import AutoModel, AutoTokenizer

        if "model" not in state:
            folder = str(path or _default_encoder_dir())
            state["tok"] = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            state["model"] = AutoModel.from_pretrained(folder, local_files_only=True).eval()
        tok, model = state["tok"], state["model"]
        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), batch_size):
                enc = tok(
                    list(texts[i : i + batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=max_length,
                    return_tensors="pt",
                )
                hidden = model(**enc).last_hidden_state  # (B, L, H)
                mask = enc["attention_mask"].unsqueeze(-1).float()  # (B, L, 1)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B, H)
                out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, model.config.hidden_size), np.float32)

    return embed
