"""Run provenance and measurements for ``report.json``: hardware, code version, latency, plots."""

from __future__ import annotations

import functools
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

import torch

import models


@functools.cache
def code_version() -> str:
    """Package version plus the git commit when running from a checkout (``0.1.0+g1a2b3c4``)."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return f"{models.__version__}+g{sha}{'.dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return models.__version__


def hardware() -> dict:
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


@torch.no_grad()
def cpu_latency_ms(
    model, tokenizer, texts: list, max_length: int, *, repeats: int = 1, warmup: int = 3
) -> float:
    """Median wall time in ms to classify one example at batch size 1 on CPU.

    Args:
        texts: (text, text_pair) tuples; text_pair may be None.
    """
    device = next(model.parameters()).device
    model = model.to("cpu").eval()
    times = []
    for i, (text, pair) in enumerate(texts[:warmup] + texts):
        enc = tokenizer(text, pair, truncation=True, max_length=max_length, return_tensors="pt")
        t0 = time.perf_counter()
        for _ in range(repeats):
            model(**enc)
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1000 / repeats)
    model.to(device)
    return statistics.median(times)


def plot_learning_curves(histories: dict[str, dict], metric: str, path: Path) -> None:
    """Training loss per step and dev ``metric`` per epoch, one line per stage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_dev) = plt.subplots(1, 2, figsize=(10, 4))
    for stage, hist in histories.items():
        train = hist.get("train", [])
        if train:
            ax_loss.plot([r["step"] for r in train], [r["loss"] for r in train], label=stage, lw=1)
        dev = hist.get("dev", [])
        if dev:
            ax_dev.plot([r["epoch"] for r in dev], [r[metric] for r in dev], marker="o", label=stage)
    ax_loss.set(xlabel="optimizer step", ylabel="training loss", title="Training loss")
    ax_dev.set(xlabel="epoch", ylabel=f"dev {metric}", title=f"Dev {metric}")
    for ax in (ax_loss, ax_dev):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
