"""Full-state checkpoints for resumable training: model, matcher, optimizer, scheduler, RNG, step."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from models.config import KDConfig

STATE_FILE = "trainer_state.pt"
BEST_FILE = "best_student.pt"


@dataclass
class TrainState:
    epoch: int = 0  # epochs completed
    step_in_epoch: int = 0  # optimizer steps done in the current (unfinished) epoch
    global_step: int = 0
    best_score: float = float("-inf")
    best_epoch: int = 0
    best_metrics: dict = field(default_factory=dict)
    bad_epochs: int = 0
    elapsed_s: float = 0.0
    history: dict = field(default_factory=lambda: {"train": [], "dev": []})


def exists(workdir: Path) -> bool:
    return (Path(workdir) / STATE_FILE).is_file()


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save(workdir: Path, state: TrainState, student, matcher, optimizer, scheduler, config: KDConfig) -> None:
    """Write the whole training state atomically (a crash mid-write keeps the previous one)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    payload = {
        "state": asdict(state),
        "student": student.state_dict(),
        "matcher": matcher.state_dict() if matcher is not None else None,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "config": config.model_dump(mode="json"),
    }
    _atomic_save(payload, workdir / STATE_FILE)


def load(workdir: Path, student, matcher, optimizer, scheduler, device) -> TrainState:
    """Restore everything saved by :func:`save`; returns the training position."""
    payload = torch.load(Path(workdir) / STATE_FILE, map_location=device, weights_only=False)
    student.load_state_dict(payload["student"])
    if matcher is not None and payload["matcher"] is not None:
        matcher.load_state_dict(payload["matcher"])
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    torch.set_rng_state(payload["rng_cpu"].cpu())
    if payload["rng_cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(payload["rng_cuda"])
    return TrainState(**payload["state"])


def save_best(workdir: Path, student) -> None:
    Path(workdir).mkdir(parents=True, exist_ok=True)
    _atomic_save(student.state_dict(), Path(workdir) / BEST_FILE)


def load_best(workdir: Path, student, device) -> None:
    path = Path(workdir) / BEST_FILE
    if path.is_file():
        student.load_state_dict(torch.load(path, map_location=device, weights_only=True))
