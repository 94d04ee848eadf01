"""Teachers and students as the API sees them: names checked, paths confined, facts read torch-free.

A teacher is a built-in name (the engine's ``minilm-l6``, ``mpnet-base``) or a path to a Hugging
Face folder. Paths must resolve (symlinks followed) inside one of the configured model roots, so
a request can never make the worker read an arbitrary folder. Descriptors are read from
``config.json`` and ``tokenizer.json`` without loading weights; parameter counts are estimated
from the config (the engine's reports carry the exact count).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.errors import InvalidRequestError, PathNotAllowedError
from models.config import ModelDescriptor, StudentSpec
from models.errors import AssetMissingError

# Facts about built-in teachers whose folder may not be unpacked yet (from shared/assets.md).
BUILTIN_FACTS: dict[str, dict[str, Any]] = {
    "minilm-l6": {
        "model_type": "bert",
        "num_hidden_layers": 6,
        "hidden_size": 384,
        "num_attention_heads": 12,
        "intermediate_size": 1536,
        "vocab_size": 30522,
        "max_position_embeddings": 512,
        "type_vocab_size": 2,
    },
    "mpnet-base": {
        "model_type": "mpnet",
        "num_hidden_layers": 12,
        "hidden_size": 768,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
        "vocab_size": 30527,
        "max_position_embeddings": 514,
        "type_vocab_size": 0,
    },
}


@dataclass(frozen=True)
class ResolvedModel:
    """A teacher as the worker will receive it, plus what the recommender needs to know."""

    spec: str  # what goes into DistillSpec.teacher: a built-in name or an absolute path
    descriptor: ModelDescriptor
    config: dict[str, Any]


# Largest plausible shape of a model folder's config.json (the largest public encoders fit).
PLAUSIBLE_MAXIMA = {
    "num_hidden_layers": 256,
    "hidden_size": 16384,
    "num_attention_heads": 256,
    "intermediate_size": 65536,
    "vocab_size": 1_000_000,
    "max_position_embeddings": 1_000_000,
    "type_vocab_size": 1024,
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _shown(path_text: str) -> str:
    """The client's path as a message quotes it: bounded (it is echoed input)."""
    return repr(path_text if len(path_text) <= 200 else path_text[:200] + "...")


def confine(path_text: str, roots: tuple[Path, ...], field: str = "model path") -> Path:
    """Resolve ``path_text`` (absolute, or relative to a root) to a model folder inside a root.

    Messages name ``field`` and the client's text, never a root or a resolved path (server paths).

    Raises:
        PathNotAllowedError: The path escapes every root (``..``, symlinks, absolute elsewhere).
        InvalidRequestError: It has control characters (a NUL makes path calls raise), cannot be
            a path at all, or stays inside a root but names no model folder (no config.json).
    """
    if not path_text or _CONTROL.search(path_text):
        raise InvalidRequestError(f"{field}: a model path must not be empty or contain control characters")
    inside = False
    try:
        candidate = Path(path_text).expanduser()
        tries = [candidate] if candidate.is_absolute() else [root / candidate for root in roots]
        for attempt in tries:
            resolved = attempt.resolve()
            if not any(resolved.is_relative_to(root) for root in roots):
                continue
            inside = True
            if (resolved / "config.json").is_file():
                return resolved
    except (OSError, ValueError, RuntimeError) as exc:  # too long, a symlink loop, ...
        raise InvalidRequestError(f"{field}: {_shown(path_text)} is not a usable model path") from exc
    if inside:
        raise InvalidRequestError(
            f"{field}: no model folder {_shown(path_text)} (with config.json) under the model roots; "
            f"built-in teachers: {', '.join(BUILTIN_FACTS)}"
        )
    raise PathNotAllowedError(
        f"{field}: model path {_shown(path_text)} is outside the folders this server allows models "
        "from; give the folder's path relative to a model root (the operator knows where they are)"
    )


def relative_name(folder: Path, roots: tuple[Path, ...]) -> str:
    """A confined folder as the client names it: relative to its model root (no server path)."""
    for root in roots:
        if folder.is_relative_to(root):
            return folder.relative_to(root).as_posix() or "."
    return folder.name


def check_plausible(cfg: dict[str, Any], name: str) -> None:
    """Refuse a model config whose shape is beyond any real model (it would be priced as such).

    Raises:
        InvalidRequestError: A size is not a positive integer within :data:`PLAUSIBLE_MAXIMA`.
    """
    for key, most in PLAUSIBLE_MAXIMA.items():
        value = cfg.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= most:
            raise InvalidRequestError(
                f"model {name!r}: {key} must be an integer in 0..{most}, got {str(value)[:40]}"
            )


def _is_builtin(name: str) -> bool:
    return name in BUILTIN_FACTS


def estimate_params(cfg: dict[str, Any]) -> int | None:
    """Parameters of a BERT-like encoder from its config (embeddings, layers, pooler)."""
    try:
        h, n_layers = int(cfg["hidden_size"]), int(cfg["num_hidden_layers"])
        inter = int(cfg.get("intermediate_size") or 4 * h)
        vocab = int(cfg.get("vocab_size") or 30522)
        positions = int(cfg.get("max_position_embeddings") or 512)
        types = int(cfg.get("type_vocab_size") or 0)
    except (KeyError, TypeError, ValueError):
        return None
    embeddings = (vocab + positions + types) * h + 2 * h
    layer = 4 * (h * h + h) + 2 * h * inter + inter + h + 4 * h
    return embeddings + n_layers * layer + h * h + h


def _tokenizer_id(folder: Path | None) -> str | None:
    """The vocabulary digest the engine uses (sha256 of the sorted token -> id pairs)."""
    if folder is None or not (folder / "tokenizer.json").is_file():
        return None
    from tokenizers import Tokenizer  # torch-free

    vocab = sorted(
        Tokenizer.from_file(str(folder / "tokenizer.json")).get_vocab(with_added_tokens=True).items()
    )
    return hashlib.sha256(json.dumps(vocab).encode()).hexdigest()[:16]


def _descriptor(name: str, cfg: dict[str, Any], tokenizer_id: str | None) -> ModelDescriptor:
    return ModelDescriptor(
        name=name,
        family=cfg.get("model_type"),
        num_layers=cfg.get("num_hidden_layers"),
        hidden_size=cfg.get("hidden_size"),
        num_params=estimate_params(cfg),
        num_heads=cfg.get("num_attention_heads"),
        tokenizer_id=tokenizer_id,
    )


class ModelCatalog:
    """Resolves teacher names/paths and describes students, with descriptors cached per name."""

    def __init__(self, model_roots: tuple[Path, ...]) -> None:
        self.model_roots = model_roots
        self._teachers: dict[str, ResolvedModel] = {}

    def _builtin_folder(self, name: str) -> Path | None:
        from models import assets

        try:
            if name == "minilm-l6":
                return Path(assets.minilm_path())
            return Path(assets.mpnet_path(prepare=False))
        except AssetMissingError:
            return None  # described from BUILTIN_FACTS; the worker prepares or reports it

    def teacher(self, name: str) -> ResolvedModel:
        """Resolve a teacher (cached: a folder's config does not change under a running service)."""
        if name not in self._teachers:
            if _is_builtin(name):
                folder = self._builtin_folder(name)
                cfg = _read_config(folder) if folder else dict(BUILTIN_FACTS[name])
                resolved = ResolvedModel(name, _descriptor(name, cfg, _tokenizer_id(folder)), cfg)
            else:
                folder = confine(name, self.model_roots, "teacher")
                shown = relative_name(folder, self.model_roots)
                cfg = _read_config(folder, shown)
                check_plausible(cfg, shown)
                # the worker gets the folder; clients, records and messages see its relative name
                resolved = ResolvedModel(str(folder), _descriptor(shown, cfg, _tokenizer_id(folder)), cfg)
            self._teachers[name] = resolved
        return self._teachers[name]

    def student(self, spec: StudentSpec, teacher: ResolvedModel) -> tuple[StudentSpec, ModelDescriptor]:
        """Confine a checkpoint path and describe the student the engine will build from ``spec``."""
        t_cfg = teacher.config
        n_teacher = int(t_cfg.get("num_hidden_layers") or 0)
        if spec.checkpoint is not None:
            folder = confine(spec.checkpoint, self.model_roots, "student.checkpoint")
            shown = relative_name(folder, self.model_roots)
            cfg = _read_config(folder, shown)
            check_plausible(cfg, shown)
            return spec.model_copy(update={"checkpoint": str(folder)}), _descriptor(
                shown, cfg, _tokenizer_id(folder)
            )
        if spec.fresh:
            cfg = dict(t_cfg, num_hidden_layers=spec.num_layers)
            for key, value in (
                ("hidden_size", spec.hidden_size),
                ("num_attention_heads", spec.num_heads),
                ("intermediate_size", spec.intermediate_size),
            ):
                if value:
                    cfg[key] = value
            check_plausible(cfg, spec.describe())
        else:
            n_layers = len(spec.layers) if spec.layers is not None else int(spec.num_layers or 0)
            if spec.layers is not None and n_teacher and max(spec.layers) >= n_teacher:
                raise InvalidRequestError(
                    f"student.layers must index the teacher's {n_teacher} layers (0..{n_teacher - 1})"
                )
            if n_teacher and n_layers > n_teacher:
                raise InvalidRequestError(
                    f"a derived student needs at most the teacher's {n_teacher} layers, got {n_layers}"
                )
            cfg = dict(t_cfg, num_hidden_layers=n_layers)
        return spec, _descriptor(spec.describe(), cfg, teacher.descriptor.tokenizer_id)

    def students_within(
        self, teacher: ResolvedModel, *, max_params: int | None, max_layers: int | None
    ) -> list[tuple[StudentSpec, ModelDescriptor]]:
        """Students derived from the teacher (1..L-1 layers) that fit the budget, largest first."""
        n_teacher = int(teacher.config.get("num_hidden_layers") or 0)
        out = []
        for n in range(max(n_teacher - 1, 1), 0, -1):
            spec, desc = self.student(StudentSpec(num_layers=n), teacher)
            if max_layers is not None and n > max_layers:
                continue
            if max_params is not None and (desc.num_params is None or desc.num_params > max_params):
                continue
            out.append((spec, desc))
        if not out:
            raise InvalidRequestError(
                f"no student derived from {teacher.descriptor.name!r} fits the budget "
                f"(max_params={max_params}, max_layers={max_layers})"
            )
        return out


def confine_config_paths(kd_config_json: dict[str, Any], roots: tuple[Path, ...]) -> dict[str, Any]:
    """Confine the model folders a KD config names (MLM and translation checkpoints) to the roots."""
    aug = dict(kd_config_json.get("augmentation") or {})
    if aug.get("mlm_model"):
        aug["mlm_model"] = str(confine(aug["mlm_model"], roots, "augmentation.mlm_model"))
    if aug.get("translation_models"):
        aug["translation_models"] = [
            str(confine(p, roots, f"augmentation.translation_models[{i}]"))
            for i, p in enumerate(aug["translation_models"])
        ]
    return {**kd_config_json, "augmentation": aug}


def _read_config(folder: Path, shown: str | None = None) -> dict[str, Any]:
    """The folder's config.json; errors name it by ``shown`` (its relative name), not its path."""
    where = f"{shown or folder.name}/config.json"
    try:
        cfg = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not valid JSON"
        raise AssetMissingError(f"cannot read {where}: {reason}") from exc
    if not isinstance(cfg, dict):
        raise AssetMissingError(f"{where} is not a JSON object")
    return cfg
