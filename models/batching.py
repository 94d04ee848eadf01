"""Tokenised examples, dynamic-padding collation and the teacher-output cache."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class Encoded:
    """One tokenised example. ``index`` is its position in the original train/dev tuple, or -1
    for augmented copies (which have no cached teacher outputs)."""

    input_ids: tuple[int, ...]
    token_type_ids: tuple[int, ...] | None
    label: int | float
    index: int


def label_to_target(label, label_names: tuple[str, ...], task_kind: str) -> int | float:
    if task_kind == "regression":
        return float(label)
    return label_names.index(label)


def encode_examples(
    examples: Sequence,
    tokenizer,
    max_length: int,
    label_names: tuple[str, ...],
    task_kind: str,
    *,
    indices: Sequence[int] | None = None,
) -> list[Encoded]:
    """Tokenise (text, text_pair) with truncation and no padding (padding happens per batch)."""
    if not examples:
        return []
    texts = [e.text for e in examples]
    pairs = [e.text_pair for e in examples]
    has_pair = any(p is not None for p in pairs)
    enc = tokenizer(
        texts,
        [p or "" for p in pairs] if has_pair else None,
        truncation=True,
        max_length=max_length,
        padding=False,
    )
    tt = enc.get("token_type_ids")
    indices = list(range(len(examples))) if indices is None else list(indices)
    return [
        Encoded(
            input_ids=tuple(enc["input_ids"][i]),
            token_type_ids=tuple(tt[i]) if tt is not None else None,
            label=label_to_target(ex.label, label_names, task_kind),
            index=indices[i],
        )
        for i, ex in enumerate(examples)
    ]


def collate(items: Sequence[Encoded], pad_id: int, task_kind: str) -> dict[str, torch.Tensor]:
    """Pad a list of encoded examples to the longest in the batch."""
    length = max(len(it.input_ids) for it in items)
    batch = len(items)
    input_ids = torch.full((batch, length), pad_id, dtype=torch.long)  # (B, L)
    attention_mask = torch.zeros((batch, length), dtype=torch.long)  # (B, L)
    token_type_ids = torch.zeros((batch, length), dtype=torch.long)  # (B, L)
    for row, it in enumerate(items):
        n = len(it.input_ids)
        input_ids[row, :n] = torch.tensor(it.input_ids)
        attention_mask[row, :n] = 1
        if it.token_type_ids is not None:
            token_type_ids[row, :n] = torch.tensor(it.token_type_ids)
    dtype = torch.float32 if task_kind == "regression" else torch.long
    out = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "labels": torch.tensor([it.label for it in items], dtype=dtype),
        "index": torch.tensor([it.index for it in items], dtype=torch.long),
    }
    if items[0].token_type_ids is not None:
        out["token_type_ids"] = token_type_ids
    return out


def length_sorted_batches(items: Sequence[Encoded], batch_size: int) -> list[list[Encoded]]:
    """Batches of similar length (for evaluation: less padding, same results)."""
    order = sorted(range(len(items)), key=lambda i: len(items[i].input_ids))
    return [[items[i] for i in order[s : s + batch_size]] for s in range(0, len(order), batch_size)]


class TeacherCache:
    """Teacher outputs per train example, computed once when inputs do not change between epochs.

    Stores logits (N, C) and, for the teacher layers that the intermediate loss reads, hidden states
    (N, L_max, d) zero-padded past each example's length (or (N, 1, d), the [CLS] vector, for
    [CLS]-level losses), on the training device, so a batch is one gather per layer.
    """

    def __init__(
        self, layers: Sequence[int], cls_only: bool, num_examples: int, max_len: int, device
    ) -> None:
        self.layers, self.cls_only = list(layers), cls_only
        self.num_examples, self.width, self.device = num_examples, 1 if cls_only else max_len, device
        self.logits: torch.Tensor | None = None  # (N, C)
        self.hidden: dict[int, torch.Tensor] = {}  # layer -> (N, width, d)
        self.filled = torch.zeros(num_examples, dtype=torch.bool)

    @staticmethod
    def estimate_bytes(
        layers: Sequence[int], cls_only: bool, num_examples: int, max_len: int, hidden: int
    ) -> int:
        return num_examples * len(layers) * (1 if cls_only else max_len) * hidden * 4

    def add(self, index: torch.Tensor, logits: torch.Tensor, hidden_states: dict, attention_mask) -> None:
        """Store a batch: ``hidden_states`` maps layer -> (B, L, d) (or (B, 1, d) when ``cls_only``)."""
        idx = index.to(self.device)
        if self.logits is None:
            self.logits = torch.zeros(self.num_examples, logits.shape[-1], device=self.device)
        self.logits[idx] = logits.float().to(self.device)
        mask = attention_mask.to(self.device).unsqueeze(-1).float()  # (B, L, 1)
        for t in self.layers:
            h = hidden_states[t].float().to(self.device)  # (B, L, d)
            if t not in self.hidden:
                self.hidden[t] = torch.zeros(self.num_examples, self.width, h.shape[-1], device=self.device)
            if not self.cls_only:
                h = h * mask  # zero past each example's length, like a batch padded on the fly
            self.hidden[t][idx, : h.shape[1]] = h
        self.filled[index.cpu()] = True

    def has(self, index: torch.Tensor) -> bool:
        ids = index.cpu()
        return bool((ids >= 0).all()) and bool(self.filled[ids].all())

    def get(self, index: torch.Tensor, seq_len: int, device) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """Logits (B, C) and, per cached layer, hidden states (B, seq_len or 1, d)."""
        idx = index.to(self.device)
        width = 1 if self.cls_only else seq_len
        hidden = {t: h[idx, :width].to(device) for t, h in self.hidden.items()}
        return self.logits[idx].to(device), hidden

    @property
    def num_bytes(self) -> int:
        total = self.logits.numel() * 4 if self.logits is not None else 0
        return total + sum(h.numel() * 4 for h in self.hidden.values())

    def save(self, path: Path) -> None:
        """Write the cache as safetensors (atomically: a reader sees the old file or the whole new one)."""
        from safetensors.torch import save_file

        tensors = {"logits": self.logits, "filled": self.filled}
        tensors |= {f"hidden.{t}": h for t, h in self.hidden.items()}
        meta = {"layers": json.dumps(self.layers), "cls_only": json.dumps(self.cls_only)}
        tmp = path.with_name(path.name + ".tmp")
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path, device) -> TeacherCache:
        """A cache written by :meth:`save`, on ``device``."""
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata()
            layers, cls_only = json.loads(meta["layers"]), json.loads(meta["cls_only"])
            logits, filled = f.get_tensor("logits"), f.get_tensor("filled")
            hidden = {t: f.get_tensor(f"hidden.{t}").to(device) for t in layers}
        width = next(iter(hidden.values())).shape[1] if hidden else 1
        cache = cls(layers, cls_only, logits.shape[0], width, device)
        cache.logits, cache.filled, cache.hidden = logits.to(device), filled, hidden
        return cache
