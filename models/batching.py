"""Tokenised examples, dynamic-padding collation and the teacher-output cache."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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


def encode_examples(examples: Sequence, tokenizer, max_length: int, label_names: tuple[str, ...],
                    task_kind: str, *, indices: Sequence[int] | None = None) -> list[Encoded]:
    """Tokenise (text, text_pair) with truncation and no padding (padding happens per batch)."""
    if not examples:
        return []
    texts = [e.text for e in examples]
    pairs = [e.text_pair for e in examples]
    has_pair = any(p is not None for p in pairs)
    enc = tokenizer(texts, [p or "" for p in pairs] if has_pair else None, truncation=True,
                    max_length=max_length, padding=False)
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

    Stores logits and, for the teacher layers that the intermediate loss reads, the hidden states
    trimmed to each example's length (or only the [CLS] vector for [CLS]-level losses).
    """

    def __init__(self, layers: Sequence[int], cls_only: bool) -> None:
        self.layers = list(layers)
        self.cls_only = cls_only
        self.logits: dict[int, torch.Tensor] = {}
        self.hidden: dict[int, dict[int, torch.Tensor]] = {}
        self.num_bytes = 0

    def add(self, index: torch.Tensor, logits: torch.Tensor, hidden_states, attention_mask) -> None:
        lengths = attention_mask.sum(-1).tolist()
        for row, idx in enumerate(index.tolist()):
            self.logits[idx] = logits[row].float().cpu()
            if self.layers:
                keep = 1 if self.cls_only else int(lengths[row])
                self.hidden[idx] = {t: hidden_states[t][row, :keep].float().cpu() for t in self.layers}
                self.num_bytes += sum(h.numel() * 4 for h in self.hidden[idx].values())
            self.num_bytes += logits[row].numel() * 4

    def has(self, index: torch.Tensor) -> bool:
        return all(i in self.logits for i in index.tolist())

    def get(self, index: torch.Tensor, seq_len: int, device) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """Logits (B, C) and, per cached layer, hidden states (B, L, d) padded with zeros to ``seq_len``
        (or (B, 1, d) for [CLS]-level losses)."""
        ids = index.tolist()
        logits = torch.stack([self.logits[i] for i in ids]).to(device)
        hidden = {}
        for t in self.layers:
            rows = [self.hidden[i][t] for i in ids]
            width = 1 if self.cls_only else seq_len
            out = torch.zeros(len(ids), width, rows[0].shape[-1])
            for r, h in enumerate(rows):
                out[r, : h.shape[0]] = h
            hidden[t] = out.to(device)
        return logits, hidden
