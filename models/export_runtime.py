"""What export and the report card share: reading a run directory, encoding its dev set, running
PyTorch and ONNX Runtime models through one interface, and CPU latency / throughput.

A *predictor* is a callable from a padded batch (``dict`` of int64 numpy arrays) to logits
``(B, C)`` as float32 numpy, so the same code measures a PyTorch model and an ONNX session.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.batching import collate, encode_examples
from models.errors import AssetMissingError

Batch = dict[str, np.ndarray]
Predictor = Callable[[Batch], np.ndarray]
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".onnx", ".data")
# A run's machine-local paths (dataset file, teacher folder), kept out of the served report.json.
RUN_PATHS = "run_paths.json"


def read_report(run_dir: Path) -> dict:
    """The run's ``report.json``.

    Raises:
        AssetMissingError: The folder is not a finished run (no readable report.json).
    """
    path = Path(run_dir) / "report.json"
    if not path.is_file():
        raise AssetMissingError(f"{run_dir} is not a finished run: it has no report.json")
    try:
        report = json.loads(path.read_text())
        local = path.with_name(RUN_PATHS)  # the machine-local locations report.json leaves out
        if local.is_file():
            report["local_paths"] = json.loads(local.read_text())
        return report
    except (OSError, json.JSONDecodeError) as exc:
        raise AssetMissingError(f"cannot read {path}: {exc}") from exc


def run_dataset(report: dict, dataset=None):
    """The run's dataset (given, or reloaded from the run's spec) and whether it matches the run.

    Returns:
        ``(dataset, digest_matches)``: ``digest_matches`` is False when the data changed since the
        run, so dev numbers may differ from the ones training reported.
    """
    if dataset is None:
        from models.data import load_dataset

        spec = report.get("spec") or {}
        local = report.get("local_paths") or {}
        source = local.get("dataset") or spec.get("dataset") or report["dataset"]["name"]
        dataset = load_dataset(source, **(spec.get("dataset_options") or {}))
    return dataset, dataset.digest() == report.get("dataset", {}).get("digest")


def run_max_length(report: dict) -> int:
    """The sequence length the run evaluated with (the KD config's training.max_length)."""
    return int(report["kd_config"]["training"]["max_length"])


def folder_bytes(path: Path) -> int:
    """Bytes of the weight files of a model folder, or of a single model file."""
    path = Path(path)
    if path.is_file():
        extra = path.with_name(path.name + ".data")  # ONNX external-data file, when present
        return path.stat().st_size + (extra.stat().st_size if extra.is_file() else 0)
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES)


def model_input_names(model, tokenizer) -> list[str]:
    """The inputs the exported graph takes: token_type_ids only when tokenizer and model both use it."""
    names = ["input_ids", "attention_mask"]
    uses_types = "token_type_ids" in getattr(tokenizer, "model_input_names", ())
    if uses_types and getattr(model.config, "type_vocab_size", 0):
        names.append("token_type_ids")
    return names


@dataclass(frozen=True)
class EncodedSet:
    """A split tokenised for one model: padded batches in the original order, and the targets."""

    batches: list[Batch]
    singles: list[Batch]  # one unpadded example per entry, for batch-1 latency
    labels: np.ndarray


def encode_set(
    examples: Sequence,
    tokenizer,
    max_length: int,
    label_names: tuple[str, ...],
    task_kind: str,
    input_names: Sequence[str],
    batch_size: int = 32,
) -> EncodedSet:
    """Tokenise ``examples`` (dynamic padding per batch) into numpy batches of ``input_names``."""
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    items = encode_examples(examples, tokenizer, max_length, label_names, task_kind)

    def to_numpy(chunk) -> Batch:
        batch = collate(chunk, pad_id, task_kind)
        return {k: batch[k].numpy().astype(np.int64) for k in input_names}

    batches = [to_numpy(items[s : s + batch_size]) for s in range(0, len(items), batch_size)]
    singles = [to_numpy([it]) for it in items]
    return EncodedSet(batches, singles, np.asarray([it.label for it in items]))


def torch_predictor(model) -> Predictor:
    """A predictor for a PyTorch sequence classifier (moved to CPU, eval mode, no grad)."""
    model = model.to("cpu").eval()

    def predict(batch: Batch) -> np.ndarray:
        with torch.inference_mode():
            out = model(**{k: torch.from_numpy(v) for k, v in batch.items()}).logits
        return out.float().numpy()

    return predict


def onnx_session(path: Path, threads: int | None = None):
    """An ONNX Runtime CPU session using as many intra-op threads as torch (a fair comparison)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or torch.get_num_threads()
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def onnx_predictor(session) -> Predictor:
    """A predictor for an ONNX Runtime session whose output is ``logits``."""
    names = [i.name for i in session.get_inputs()]

    def predict(batch: Batch) -> np.ndarray:
        return session.run(["logits"], {n: batch[n] for n in names})[0].astype(np.float32)

    return predict


def predict_all(predictor: Predictor, batches: Sequence[Batch]) -> np.ndarray:
    """Logits for every example, in order: ``(N, C)``."""
    return np.concatenate([predictor(b) for b in batches])


@dataclass(frozen=True)
class SpeedOptions:
    """How much to measure. Small defaults keep a report card for a tiny run to seconds.

    Attributes:
        latency_examples: Examples timed one at a time (median per-example time is reported).
        throughput_batches: Batches of ``batch_size`` timed for throughput.
        batch_size: Throughput batch size.
        warmup: Untimed calls before each measurement.
        threads: CPU threads for PyTorch and ONNX Runtime alike. One by default: multi-threaded
            batch-1 timings swing by orders of magnitude on a shared machine.
    """

    latency_examples: int = 32
    throughput_batches: int = 3
    batch_size: int = 32
    warmup: int = 3
    threads: int = 1


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` PyTorch intra-op threads, restoring the previous setting after."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class SpeedInputs:
    """What one model is timed on: one-example batches (latency) and full batches (throughput)."""

    predictor: Predictor
    singles: Sequence[Batch]
    batches: Sequence[Batch]


def measure_speeds(models: Mapping[str, SpeedInputs], opts: SpeedOptions) -> dict[str, dict[str, float]]:
    """CPU latency per example at batch 1 (median ms) and throughput at batch ``opts.batch_size``,
    for several models measured side by side.

    The models take turns call by call (example i goes through every model before example i + 1,
    and the order rotates), so a burst of load from elsewhere on a shared machine slows them all
    alike instead of one model's whole block: their ratios (the speed-ups) stay comparable. The
    throughput batches take turns the same way, each model's time summed over its own batches.

    Raises:
        ValueError: A model has no example to time.
    """
    roles = list(models)
    plans = {}
    for role, m in models.items():
        if not m.singles or not m.batches:
            raise ValueError(f"measure_speeds: {role} has no example to time")
        full = [b for b in m.batches if len(b["input_ids"]) == opts.batch_size] or list(m.batches)
        plans[role] = (
            [m.singles[i % len(m.singles)] for i in range(opts.latency_examples)],
            [full[i % len(full)] for i in range(opts.throughput_batches)],
        )
    for role in roles:  # warm-up: first calls pay for allocation and graph set-up
        for b in plans[role][0][: opts.warmup]:
            models[role].predictor(b)
        models[role].predictor(plans[role][1][0])
    latency: dict[str, list[float]] = {role: [] for role in roles}
    for i in range(opts.latency_examples):
        for role in roles[i % len(roles) :] + roles[: i % len(roles)]:
            t0 = time.perf_counter()
            models[role].predictor(plans[role][0][i])
            latency[role].append((time.perf_counter() - t0) * 1000)
    elapsed = dict.fromkeys(roles, 0.0)
    examples = dict.fromkeys(roles, 0)
    for i in range(opts.throughput_batches):
        for role in roles[i % len(roles) :] + roles[: i % len(roles)]:
            t0 = time.perf_counter()
            examples[role] += models[role].predictor(plans[role][1][i]).shape[0]
            elapsed[role] += time.perf_counter() - t0
    return {
        role: {
            "latency_ms_batch1": statistics.median(latency[role]),
            "throughput_batch32": examples[role] / elapsed[role],
            "throughput_batch_size": int(len(plans[role][1][0]["input_ids"])),
        }
        for role in roles
    }


def cycled(examples: Sequence, n: int) -> list:
    """Exactly ``n`` examples, repeating ``examples`` when there are fewer (a tiny dev set still fills
    a full throughput batch)."""
    if not examples:
        return []
    return [examples[i % len(examples)] for i in range(n)]


def throughput_set(
    examples: Sequence,
    tokenizer,
    max_length: int,
    label_names: tuple[str, ...],
    task_kind: str,
    input_names: Sequence[str],
    opts: SpeedOptions,
) -> EncodedSet:
    """The batches timed for throughput: ``opts.throughput_batches`` full batches of ``opts.batch_size``,
    repeating ``examples`` when there are fewer (see :func:`cycled`)."""
    n = opts.batch_size * opts.throughput_batches
    return encode_set(
        cycled(list(examples), n),
        tokenizer,
        max_length,
        label_names,
        task_kind,
        input_names,
        batch_size=opts.batch_size,
    )
