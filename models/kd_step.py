"""One KD training step: how teacher and student interact (what the loss is, not when to step).

Holds the intermediate-layer matcher (projections, MI critics: trained with the student) and
computes L = w_kd·L_KD + w_inter·L_inter + w_hard·L_task for a batch (spec §5), with optional
repeated-augmentation copies and word-embedding mixup (spec §2).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from models.config import CLS_LEVEL_LOSSES, KDConfig
from models.losses import LayerMatcher, hard_loss, prediction_loss

Batch = dict[str, torch.Tensor]


def concat_batches(a: Batch, b: Batch, pad_id: int) -> Batch:
    """Stack two collated batches, padding the shorter one on the right."""
    length = max(a["input_ids"].shape[1], b["input_ids"].shape[1])
    out = {}
    for key in a:
        x, y = a[key], b[key]
        if x.ndim == 2:
            fill = pad_id if key == "input_ids" else 0
            x = F.pad(x, (0, length - x.shape[1]), value=fill)
            y = F.pad(y, (0, length - y.shape[1]), value=fill)
        out[key] = torch.cat([x, y])
    return out


class KDStep:
    """Loss computation for one batch. ``teacher=None`` trains on hard labels only."""

    def __init__(
        self, student, teacher, config: KDConfig, task_kind: str, num_labels: int, device, pad_id: int = 0
    ) -> None:
        self.pad_id = pad_id
        self.student, self.teacher, self.cfg = student, teacher, config
        self.task_kind, self.num_labels, self.device = task_kind, num_labels, device
        inter = config.intermediate
        self.use_inter = teacher is not None and inter.loss != "none" and config.weights.intermediate > 0
        self.use_kd = teacher is not None and config.weights.kd > 0
        self.cls_only = inter.loss in CLS_LEVEL_LOSSES
        self.matcher = None
        self.pairs: list[tuple[int, int]] = []
        if self.use_inter:
            n_t, n_s = teacher.config.num_hidden_layers, student.config.num_hidden_layers
            self.matcher = LayerMatcher.from_strategy(
                inter.loss,
                inter.strategy,
                student_dim=student.config.hidden_size,
                teacher_dim=teacher.config.hidden_size,
                n_student_layers=n_s,
                n_teacher_layers=n_t,
                alpha=inter.alpha,
            ).to(device)
            self.pairs = self.matcher.pairs

    def teacher_layers_needed(self) -> list[int]:
        """Teacher hidden-state indices the intermediate loss reads (0 = embeddings)."""
        if not self.use_inter or self.cfg.intermediate.loss == "att_mse":
            return []
        if self.cfg.intermediate.strategy == "emd":
            return list(range(self.teacher.config.num_hidden_layers + 1))
        return sorted({t for t, _ in self.pairs})

    @property
    def bf16(self) -> bool:
        """Whether forward passes run under bf16 autocast (CUDA only)."""
        return self.device.type == "cuda" and self.cfg.training.bf16

    def autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()

    @staticmethod
    def model_inputs(batch: Batch) -> dict[str, torch.Tensor]:
        keys = ("input_ids", "attention_mask", "token_type_ids", "inputs_embeds")
        return {k: batch[k] for k in keys if k in batch}

    def _forward(self, model, batch: Batch):
        att = self.use_inter and self.cfg.intermediate.loss == "att_mse"
        with self.autocast():
            return model(
                **self.model_inputs(batch), output_hidden_states=self.use_inter, output_attentions=att
            )

    @torch.no_grad()
    def run_teacher(self, batch: Batch):
        """Teacher logits (B, C), needed hidden states {layer: (B, L or 1, d)}, attentions or None."""
        batch = {k: v.to(self.device) for k, v in batch.items()}
        out = self._forward(self.teacher, batch)
        hidden = {}
        if out.hidden_states is not None:
            for t in self.teacher_layers_needed():
                h = out.hidden_states[t].float()
                hidden[t] = h[:, :1] if self.cls_only else h
        att = tuple(a.float() for a in out.attentions) if out.attentions is not None else None
        return out.logits.float(), hidden, att

    def loss(self, batch: Batch, extra: Batch | None, cached, gen: torch.Generator):
        """Total loss and its parts for one micro-batch.

        Args:
            batch: Collated originals.
            extra: Collated augmented copies (repeated_aug mode) or None.
            cached: (logits, hidden, None) from the teacher cache, or None.
            gen: Generator for mixup's lambda and pairing.
        """
        if extra is not None:
            batch, cached = concat_batches(batch, extra, self.pad_id), None
        batch = {k: v.to(self.device) for k, v in batch.items() if k != "index"}
        targets = batch["labels"]
        s_batch = t_batch = batch
        if self.cfg.mixup.enabled:
            s_batch, t_batch, targets = self._mixup(batch, gen)
            cached = None
        s_out = self._forward(self.student, s_batch)
        logits = s_out.logits.float()
        parts: dict[str, torch.Tensor] = {}  # detached, synced once per step by the trainer
        total = torch.zeros((), device=self.device)
        if self.teacher is not None and (self.use_kd or self.use_inter):
            t_logits, t_hidden, t_att = cached if cached is not None else self.run_teacher(t_batch)
            if self.use_kd:
                p = self.cfg.prediction
                kd = prediction_loss(p.loss, logits, t_logits, p.temperature, p.scale_by_t2)
                total = total + self.cfg.weights.kd * kd
                parts["kd"] = kd.detach()
            if self.use_inter:
                inter = self._intermediate(s_out, s_batch["attention_mask"], t_hidden, t_att)
                total = total + self.cfg.weights.intermediate * inter
                parts["inter"] = inter.detach()
        if self.cfg.weights.hard > 0 or self.teacher is None:
            hard = hard_loss(logits, targets, self.task_kind)
            total = total + (self.cfg.weights.hard if self.teacher is not None else 1.0) * hard
            parts["hard"] = hard.detach()
        return total, parts

    def _intermediate(self, s_out, mask, t_hidden: dict, t_att) -> torch.Tensor:
        if self.cfg.intermediate.loss == "att_mse":
            s_att = tuple(a.float() for a in s_out.attentions)
            return self.matcher(None, None, mask, student_attentions=s_att, teacher_attentions=t_att)
        s_hidden = tuple(h.float() for h in s_out.hidden_states)
        if self.cls_only:
            s_hidden, mask = tuple(h[:, :1] for h in s_hidden), mask[:, :1]
        t_list = [t_hidden.get(i) for i in range(self.teacher.config.num_hidden_layers + 1)]
        return self.matcher(s_hidden, tuple(t_list), mask)

    def _mixup(self, batch: Batch, gen: torch.Generator):
        """[original; mixed] inputs for each model (its own word embeddings) and the mixed targets."""
        from models.mixup import (
            embed_inputs,
            mix_attention_mask,
            mix_embeddings,
            mix_permutation,
            mixed_hard_targets,
            sample_lambda,
        )

        lam = sample_lambda(self.cfg.mixup.alpha, gen)
        perm = mix_permutation(batch["input_ids"].shape[0], gen).to(self.device)
        mask = batch["attention_mask"]
        mixed_mask = torch.cat([mask, mix_attention_mask(mask, perm)])

        def mixed_inputs(model) -> Batch:
            emb = embed_inputs(model, batch["input_ids"], batch.get("token_type_ids"))  # (B, L, d)
            out = {
                "inputs_embeds": torch.cat([emb, mix_embeddings(emb, lam, perm)]),
                "attention_mask": mixed_mask,
            }
            if "token_type_ids" in batch:
                out["token_type_ids"] = torch.cat([batch["token_type_ids"], batch["token_type_ids"]])
            return out

        labels = batch["labels"]
        n = None if self.task_kind == "regression" else self.num_labels
        mixed = mixed_hard_targets(labels, lam, perm, n)
        if self.task_kind == "regression":
            targets = torch.cat([labels, mixed])
        else:
            targets = torch.cat([F.one_hot(labels, self.num_labels).float(), mixed])
        t_batch = None
        if self.teacher is not None:
            with torch.no_grad():
                t_batch = mixed_inputs(self.teacher)
        return mixed_inputs(self.student), t_batch, targets
