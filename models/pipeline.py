"""End-to-end distillation run: dataset → teacher (fine-tuned and cached if needed) → KD → report.

``run_distillation`` is what the CLI's ``distill`` command and the service's worker call.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock

from models.batching import encode_examples
from models.config import DistillSpec, KDConfig, LossWeights, TrainingConfig, check_compatible
from models.export_runtime import RUN_PATHS
from models.metrics import primary_metric
from models.modeling import (
    build_student,
    count_parameters,
    describe_model,
    has_task_head,
    load_classifier,
    load_tokenizer,
    resolve_model_path,
)
from models.report import code_version, cpu_latency_ms, hardware, plot_learning_curves
from models.trainer import KDTrainer

log = logging.getLogger(__name__)
# bump when teacher fine-tuning changes, to invalidate cached teachers; 2: the new head is seeded
FINETUNE_VERSION = "2"


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_digest(folder: Path) -> str:
    """Content digest of a model folder (config and weight files)."""
    h = hashlib.sha256()
    for name in sorted(
        p.name for p in folder.iterdir() if p.suffix in (".json", ".safetensors", ".bin", ".txt")
    ):
        h.update(name.encode())
        h.update(_file_digest(folder / name).encode())
    return h.hexdigest()[:20]


def default_cache_dir() -> Path:
    from models import assets

    return Path(assets.default_cache_dir())


def _device(device: str | None) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _quiet_transformers() -> None:
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def hard_label_config(training: TrainingConfig) -> KDConfig:
    """Plain fine-tuning on hard labels (teacher fine-tuning and the no-KD baseline)."""
    return KDConfig(weights=LossWeights(kd=0.0, intermediate=0.0, hard=1.0), training=training)


def prepare_teacher(
    spec: DistillSpec, dataset, *, cache_dir: Path, device, progress=None, show_progress: bool = False
) -> tuple[Path, dict]:
    """Return a teacher folder with a head for this task, fine-tuning (and caching) it when needed.

    The cache key covers the dataset content, the base model's content and the fine-tuning settings,
    so a changed input never reuses a stale teacher. Returns (folder, teacher_info) where teacher_info
    holds its dev metrics and whether it came from the cache.
    """
    base = resolve_model_path(spec.teacher)
    if has_task_head(base, dataset.label_names, dataset.task_kind):
        return base, {"fine_tuned": False, "source": str(base)}
    tt = spec.teacher_training
    key = hashlib.sha256(
        "|".join([dataset.digest(), model_digest(base), tt.model_dump_json(), FINETUNE_VERSION]).encode()
    ).hexdigest()[:24]
    folder = cache_dir / "teachers" / key
    folder.parent.mkdir(parents=True, exist_ok=True)
    # runs in parallel (worker slots) that need the same teacher: one fine-tunes, the others wait for it
    with FileLock(str(folder.parent / f"{key}.lock")):
        info_file = folder / "teacher_info.json"
        if info_file.is_file():
            info = json.loads(info_file.read_text())
            return folder, {**info, "cached": True}
        info = _fine_tune_teacher(spec, dataset, base, folder, device, progress, show_progress)
    return folder, {**info, "cached": False}


def _fine_tune_teacher(spec, dataset, base: Path, folder: Path, device, progress, show_progress) -> dict:
    """Fine-tune ``base`` on the dataset's hard labels and save it (with teacher_info.json) to ``folder``."""
    tt = spec.teacher_training
    key = folder.name
    config = hard_label_config(
        TrainingConfig(
            epochs=tt.epochs,
            learning_rate=tt.learning_rate,
            batch_size=tt.batch_size,
            max_length=tt.max_length,
            seed=tt.seed,
        )
    )
    tokenizer = load_tokenizer(base)
    # The new head is drawn from the global RNG, in whatever state the process left it: seed it, so
    # one seed and thread count give one teacher (unseeded, the same job fine-tuned three times
    # reached dev 0.5 / 0.5 / 0.65). Training itself reseeds from tt.seed.
    torch.manual_seed(tt.seed)
    model = load_classifier(base, dataset.label_names, dataset.task_kind)
    work = folder.parent / f"{key}.work"
    trainer = KDTrainer(
        student=model,
        teacher=None,
        config=config,
        task_kind=dataset.task_kind,
        label_names=dataset.label_names,
        tokenizer=tokenizer,
        workdir=work,
        device=device,
        progress=progress,
        stage="teacher",
        show_progress=show_progress,
    )
    result = trainer.fit(dataset.train, dataset.dev, resume=True)
    tmp = folder.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    info = {
        "fine_tuned": True,
        "base": spec.teacher,
        "dev_metrics": result.best_metrics,
        "dev_score": result.best_score,
        "epochs": tt.epochs,
        "wall_time_s": result.wall_time_s,
        "seed": tt.seed,
        "torch_threads": torch.get_num_threads(),  # bit-identical only at the same thread count
        "history": result.history,
        "key": key,
    }
    (tmp / "teacher_info.json").write_text(json.dumps(info, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    shutil.rmtree(work, ignore_errors=True)
    return info


def run_distillation(
    spec: DistillSpec,
    out_dir: str | Path,
    *,
    progress: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: bool = False,
    cache_dir: str | Path | None = None,
    device: str | None = None,
    show_progress: bool = False,
) -> dict:
    """Distil ``spec.teacher`` into ``spec.student`` on ``spec.dataset``; write and return the report.

    Writes ``out_dir/report.json``, ``out_dir/learning_curves.png``, ``out_dir/student/`` (a Hugging
    Face folder with tokenizer) and ``out_dir/checkpoint/`` (for ``resume``).

    Raises:
        DatasetError, ConfigError, AssetMissingError: before any training, with what to fix.
        Cancelled: ``should_stop`` returned True; a checkpoint was saved.
    """
    from models.data import load_dataset

    t0 = time.perf_counter()
    _quiet_transformers()
    out = Path(out_dir)
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    dev = _device(device)
    cfg = spec.kd_config
    dataset = load_dataset(spec.dataset, **spec.dataset_options)
    check_compatible(cfg, task_kind=dataset.task_kind)
    teacher_dir, teacher_info = prepare_teacher(
        spec, dataset, cache_dir=cache, device=dev, progress=progress, show_progress=show_progress
    )
    attn = cfg.intermediate.loss == "att_mse"
    teacher = load_classifier(teacher_dir, dataset.label_names, dataset.task_kind, attn_eager=attn)
    t_tok = load_tokenizer(teacher_dir)
    student = build_student(
        spec.student, teacher, t_tok, dataset.label_names, dataset.task_kind, attn_eager=attn
    )
    t_desc = describe_model(spec.teacher, teacher, t_tok)
    s_desc = describe_model(spec.student.describe(), student.model, student.tokenizer)
    check_compatible(cfg, task_kind=dataset.task_kind, teacher=t_desc, student=s_desc)
    out.mkdir(parents=True, exist_ok=True)  # only once every input is validated: bad input writes nothing
    trainer = KDTrainer(
        student=student.model,
        teacher=teacher,
        config=cfg,
        task_kind=dataset.task_kind,
        label_names=dataset.label_names,
        tokenizer=student.tokenizer,
        workdir=out / "checkpoint",
        device=dev,
        progress=progress,
        should_stop=should_stop,
        augment_resources=_augment_resources(cfg, teacher, t_tok, dev),
        show_progress=show_progress,
        teacher_outputs_dir=cache / "teacher_outputs",
        teacher_id=teacher_info.get("key") or model_digest(teacher_dir),
    )
    teacher_metrics = teacher_info.get("dev_metrics") or trainer.evaluate(
        teacher,
        encode_examples(dataset.dev, t_tok, cfg.training.max_length, dataset.label_names, dataset.task_kind),
    )
    result = trainer.fit(dataset.train, dataset.dev, resume=resume)
    histories = {"kd": result.history}
    if teacher_info.get("history"):
        histories = {"teacher": teacher_info["history"], **histories}
    baseline = None
    if spec.train_no_kd_baseline:
        baseline = _no_kd_baseline(
            spec, dataset, teacher, t_tok, out, dev, progress, should_stop, resume, show_progress
        )
        histories["no_kd"] = baseline["history"]
    student.model.save_pretrained(out / "student")
    student.tokenizer.save_pretrained(out / "student")
    metric = primary_metric(dataset.task_kind)
    report = _report(
        spec,
        dataset,
        metric,
        teacher_metrics,
        {**teacher_info, "path": teacher_dir},
        result,
        baseline,
        t_desc,
        s_desc,
        (teacher, t_tok),
        student,
        t0,
        dev,
    )
    plot_learning_curves(histories, metric, out / "learning_curves.png")
    # report.json is served to clients: it names files relative to the run and cache folders; the
    # machine-local locations a later export needs stay in run_paths.json, which is never served
    local = {"dataset": spec.dataset, "teacher_path": str(report.pop("teacher_path"))}
    (out / RUN_PATHS).write_text(json.dumps(local, indent=2))
    report = portable_report(report, {out: ".", cache: "cache"})
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str))
    return report


def portable_path(text: str, anchors: dict[Path, str]) -> str:
    """An absolute path as a report may show it: relative to an anchor folder (``cache/teachers/x``),
    else its last component. Anything else (a built-in name, a relative path) is returned as is."""
    if not os.path.isabs(text):
        return text
    path = Path(text)
    for folder, label in anchors.items():
        for root in {folder, folder.resolve()}:
            if path.is_relative_to(root):
                rest = path.relative_to(root).as_posix()
                return label if rest == "." else f"{label}/{rest}"
    return path.name or "<path>"


def _portable_tree(value: Any, anchors: dict[Path, str]) -> Any:
    if isinstance(value, str):
        return portable_path(value, anchors)
    if isinstance(value, dict):
        return {k: _portable_tree(v, anchors) for k, v in value.items()}
    if isinstance(value, list):
        return [_portable_tree(v, anchors) for v in value]
    return value


def portable_report(report: dict, anchors: dict[Path, str]) -> dict:
    """The report with no absolute path of this machine (dataset file, model folders, caches).

    Only the fields that hold paths are rewritten (label names and other data are left alone).
    """
    out = copy.deepcopy(report)
    spec = out.get("spec") or {}
    for key in ("dataset", "teacher"):
        if isinstance(spec.get(key), str):
            spec[key] = portable_path(spec[key], anchors)
    student = spec.get("student") or {}
    if isinstance(student.get("checkpoint"), str):
        student["checkpoint"] = portable_path(student["checkpoint"], anchors)
    for kd in (spec.get("kd_config"), out.get("kd_config")):
        aug = (kd or {}).get("augmentation") or {}
        if isinstance(aug.get("mlm_model"), str):
            aug["mlm_model"] = portable_path(aug["mlm_model"], anchors)
        if aug.get("translation_models"):
            aug["translation_models"] = [portable_path(p, anchors) for p in aug["translation_models"]]
    for role in ("teacher", "student"):
        desc = out.get(role) or {}
        if isinstance(desc.get("name"), str):
            desc["name"] = portable_path(desc["name"], anchors)
    for key in ("teacher_fine_tuning", "teacher_cache"):
        if key in out:
            out[key] = _portable_tree(out[key], anchors)
    return out


def _augment_resources(cfg: KDConfig, teacher, tokenizer, device):
    if not cfg.augmentation.enabled:
        return None
    from models.augment import AugmentResources

    aug = cfg.augmentation
    return AugmentResources(
        embedding_matrix=teacher.get_input_embeddings().weight.detach().cpu(),
        tokenizer=tokenizer,
        mlm_model=aug.mlm_model,
        translation_models=aug.translation_models,
        device=str(device),
    )


def _no_kd_baseline(spec, dataset, teacher, t_tok, out, dev, progress, should_stop, resume, show_progress):
    """The same student trained on hard labels only, same budget, no augmentation or mixup."""
    cfg = hard_label_config(spec.kd_config.training)
    student = build_student(spec.student, teacher, t_tok, dataset.label_names, dataset.task_kind)
    trainer = KDTrainer(
        student=student.model,
        teacher=None,
        config=cfg,
        task_kind=dataset.task_kind,
        label_names=dataset.label_names,
        tokenizer=student.tokenizer,
        workdir=out / "checkpoint_no_kd",
        device=dev,
        progress=progress,
        should_stop=should_stop,
        stage="no_kd",
        show_progress=show_progress,
    )
    res = trainer.fit(dataset.train, dataset.dev, resume=resume)
    student.model.save_pretrained(out / "student_no_kd")
    student.tokenizer.save_pretrained(out / "student_no_kd")
    return {
        "score": res.best_score,
        "metrics": res.best_metrics,
        "history": res.history,
        "wall_time_s": res.wall_time_s,
    }


def _report(
    spec,
    dataset,
    metric,
    teacher_metrics,
    teacher_info,
    result,
    baseline,
    t_desc,
    s_desc,
    teacher_and_tokenizer,
    student,
    t0,
    dev,
) -> dict:
    teacher, t_tok = teacher_and_tokenizer
    teacher_path = teacher_info.pop("path")
    teacher_score = teacher_metrics[metric]
    texts = [(e.text, e.text_pair) for e in dataset.dev[:64]]
    max_len = spec.kd_config.training.max_length
    latency = {}
    if spec.measure_latency:
        latency = {
            "teacher_ms_per_example": cpu_latency_ms(teacher, t_tok, texts, max_len),
            "student_ms_per_example": cpu_latency_ms(student.model, student.tokenizer, texts, max_len),
        }
        latency["speedup"] = latency["teacher_ms_per_example"] / latency["student_ms_per_example"]
    return {
        "dataset": {
            "name": dataset.name,
            "task_kind": dataset.task_kind,
            "is_pair": dataset.is_pair,
            "label_names": list(dataset.label_names),
            "n_train": len(dataset.train),
            "n_dev": len(dataset.dev),
            "digest": dataset.digest(),
            "split": "dev",
        },
        "spec": spec.model_dump(mode="json"),
        "kd_config": spec.kd_config.model_dump(mode="json"),
        "pipeline_key": spec.kd_config.pipeline_key(),
        "metric": metric,
        "score_split": "dev (best epoch; optimistic, no separate test split)",
        "teacher_score": teacher_score,
        "teacher_metrics": teacher_metrics,
        "teacher_fine_tuning": {k: v for k, v in teacher_info.items() if k != "history"},
        "teacher_path": str(teacher_path),
        "artifacts": {
            "student": "student",
            "no_kd_student": "student_no_kd" if baseline else None,
            "learning_curves": "learning_curves.png",
            "checkpoint": "checkpoint",
        },
        "student_score": result.best_score,
        "student_metrics": result.best_metrics,
        "best_epoch": result.best_epoch,
        "ratio": result.best_score / teacher_score if teacher_score else None,
        "no_kd_score": baseline["score"] if baseline else None,
        "no_kd_metrics": baseline["metrics"] if baseline else None,
        "teacher": t_desc.to_dict(),
        "student": s_desc.to_dict(),
        "parameters": {"teacher": count_parameters(teacher), "student": count_parameters(student.model)},
        "latency_cpu_batch1": latency,
        "steps": result.steps,
        "teacher_cache": result.teacher_cache,
        "wall_time_s": time.perf_counter() - t0,
        "train_time_s": result.wall_time_s,
        "device": str(dev),
        "hardware": hardware(),
        "code_version": code_version(),
        "seed": spec.kd_config.training.seed,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
