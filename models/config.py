"""The KD pipeline config: one point of the Distiller search space. Torch-free.

The same object is ranked by the recommender, returned by ``POST /recommend``, trained by the
worker and stored in every sweep record. Component names are registry keys in the paper's
vocabulary (see ``shared/distiller-spec.md`` §2). Example::

    KDConfig.model_validate({
        "augmentation": {"pipeline": ["random"], "aug_p": 0.3, "mode": "pipeline"},
        "mixup": {"enabled": True},
        "prediction": {"loss": "ce", "temperature": 1.0},
        "intermediate": {"loss": "mi", "alpha": 0.9, "strategy": "skip"},
        "weights": {"kd": 1.0, "intermediate": 1.0, "hard": 0.0},
        "training": {"epochs": 3, "batch_size": 32, "max_length": 128},
    })

Whether a config can run with a given task and teacher/student pair is checked separately by
:func:`check_compatible`, because that depends on context the config alone does not hold.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.errors import ConfigError, IncompatibleModelsError

# Registry keys, spelled once. The torch-side registries must register exactly these keys
# (a test checks it), so the recommender and the API can validate without importing torch.
AUGMENTERS = ("contextual", "backtranslation", "random", "delete", "insert", "synonym", "embedding")
PREDICTION_LOSSES = ("ce", "mse", "kl")
# Token-level losses compare positions, so they need the same tokenizer on both sides.
TOKEN_LEVEL_LOSSES = ("mse", "cos", "ce", "att_mse")
CLS_LEVEL_LOSSES = ("pkd", "mi", "infonce", "tuba", "nwj")
INTERMEDIATE_LOSSES = ("none", *TOKEN_LEVEL_LOSSES, *CLS_LEVEL_LOSSES)
MI_LOSSES = ("mi", "infonce", "tuba", "nwj")
STRATEGIES = ("skip", "last", "emd")
PAPER_ALPHAS = (0.0, 0.1, 0.5, 0.7, 0.9, 1.0)

TaskKind = Literal["classification", "regression"]

# A model folder named over HTTP: bounded, and no NUL or control characters (a NUL makes the
# operating system's path calls raise instead of answering "not found").
ModelPath = Annotated[
    str,
    Field(
        min_length=1,
        max_length=500,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="a built-in name or a model folder relative to a model root (no control characters)",
    ),
]
# Seeds go to numpy, which takes 0 .. 2**32 - 1.
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
# Plausible maxima of a student's shape (the largest public encoders stay well inside them).
MAX_LAYERS = 48
MAX_HIDDEN = 8192
MAX_HEADS = 128
MAX_INTERMEDIATE = 32768


class _Strict(BaseModel):
    # Every float is finite (1e400 in JSON parses to inf, which would be stored and shown as null).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class AugmentationConfig(_Strict):
    """Data augmentation (spec §2).

    ``pipeline`` is an ordered list of augmenter keys applied in sequence to a copy of each
    example; empty means no augmentation. ``mode="pipeline"``: the train set plus one augmented
    copy, refreshed every ``refresh_every`` epochs. ``mode="repeated"``: every minibatch carries
    ``repeated_aug - 1`` augmented copies of each example.
    """

    pipeline: tuple[
        Literal["contextual", "backtranslation", "random", "delete", "insert", "synonym", "embedding"], ...
    ] = ()
    aug_p: float = Field(0.1, gt=0.0, le=1.0, description="fraction of words changed")
    mode: Literal["pipeline", "repeated"] = "pipeline"
    repeated_aug: int = Field(1, ge=1, le=16)
    refresh_every: int = Field(1, ge=1, le=100, description="epochs between refreshes in pipeline mode")
    mlm_model: ModelPath | None = Field(None, description="masked-LM checkpoint folder for 'contextual'")
    translation_models: tuple[ModelPath, ModelPath] | None = Field(
        None, description="(en->pivot, pivot->en) MarianMT folders for 'backtranslation'"
    )

    @property
    def enabled(self) -> bool:
        return bool(self.pipeline)

    @model_validator(mode="after")
    def _check(self) -> AugmentationConfig:
        if len(set(self.pipeline)) != len(self.pipeline):
            raise ValueError("augmentation.pipeline lists an augmenter twice")
        if self.mode == "repeated" and self.pipeline and self.repeated_aug < 2:
            raise ValueError("augmentation.mode='repeated' needs repeated_aug >= 2")
        if self.mode == "pipeline" and self.repeated_aug != 1:
            raise ValueError("augmentation.repeated_aug > 1 needs mode='repeated'")
        return self


class MixupConfig(_Strict):
    """Word-embedding mixup (spec §2): lambda ~ Beta(alpha, alpha), batch becomes [orig; mixed]."""

    enabled: bool = False
    alpha: float = Field(0.4, gt=0.0, le=100.0, description="Beta(alpha, alpha); (0, 100]")


class PredictionLossConfig(_Strict):
    """Prediction-layer KD loss. ``ce``: soft cross-entropy at temperature; ``mse``: MSE on
    logits / temperature (required for regression); ``kl``: KL(teacher || student)."""

    loss: Literal["ce", "mse", "kl"] = "ce"
    temperature: float = Field(1.0, gt=0.0, le=100.0, description="softmax temperature, (0, 100]")
    scale_by_t2: bool = Field(False, description="multiply the KD loss by temperature**2")


class IntermediateConfig(_Strict):
    """Intermediate-layer matching: loss key, MI-alpha, and layer-mapping strategy (spec §3-4)."""

    loss: Literal["none", "mse", "cos", "ce", "att_mse", "pkd", "mi", "infonce", "tuba", "nwj"] = "none"
    alpha: float | None = Field(None, ge=0.0, le=1.0, description="MI-alpha interpolation (loss='mi')")
    strategy: Literal["skip", "last", "emd"] = "skip"

    @model_validator(mode="after")
    def _check(self) -> IntermediateConfig:
        if self.loss == "mi" and self.alpha is None:
            raise ValueError("intermediate.loss='mi' needs intermediate.alpha in [0, 1] (paper: 0.9)")
        if self.loss != "mi" and self.alpha is not None:
            raise ValueError(f"intermediate.alpha is only used with loss='mi', not {self.loss!r}")
        return self

    @property
    def effective_alpha(self) -> float | None:
        """The MI-alpha of the named special cases (InfoNCE = 1, TUBA/NWJ = 0)."""
        return {"infonce": 1.0, "tuba": 0.0, "nwj": 0.0}.get(self.loss, self.alpha)


class LossWeights(_Strict):
    kd: float = Field(1.0, ge=0.0, le=1000.0)
    intermediate: float = Field(1.0, ge=0.0, le=1000.0)
    hard: float = Field(0.0, ge=0.0, le=1000.0)

    @model_validator(mode="after")
    def _check(self) -> LossWeights:
        if self.kd == 0 and self.intermediate == 0 and self.hard == 0:
            raise ValueError("weights: at least one of kd, intermediate, hard must be > 0")
        return self


class TrainingConfig(_Strict):
    """Optimisation settings (spec §2 defaults: AdamW, lr 5e-5, 10 % warm-up, wd 0.1)."""

    epochs: int = Field(3, ge=1, le=100)
    batch_size: int = Field(32, ge=1, le=1024)
    max_length: int = Field(128, ge=8, le=2048)
    learning_rate: float = Field(5e-5, gt=0.0, lt=1.0)
    warmup_ratio: float = Field(0.1, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.1, ge=0.0, le=10.0)
    grad_accumulation: int = Field(1, ge=1, le=1024)
    max_grad_norm: float | None = Field(1.0, gt=0.0, le=1e6)
    early_stopping_patience: int | None = Field(None, ge=1, le=100, description="epochs without dev gain")
    max_steps: int | None = Field(
        None, ge=1, le=10_000_000, description="stop after this many optimizer steps"
    )
    seed: Seed = 42
    bf16: bool = Field(True, description="bf16 autocast when CUDA is present (ignored on CPU)")
    cache_teacher: bool = Field(True, description="cache teacher outputs when inputs do not change")


class KDConfig(_Strict):
    """One KD pipeline: the unit the recommender ranks and the engine trains."""

    augmentation: AugmentationConfig = AugmentationConfig()
    mixup: MixupConfig = MixupConfig()
    prediction: PredictionLossConfig = PredictionLossConfig()
    intermediate: IntermediateConfig = IntermediateConfig()
    weights: LossWeights = LossWeights()
    training: TrainingConfig = TrainingConfig()

    @model_validator(mode="after")
    def _check(self) -> KDConfig:
        w = self.weights
        if self.intermediate.loss == "none" and w.kd == 0 and w.hard == 0:
            raise ValueError("intermediate.loss='none' with kd and hard weights 0 trains nothing")
        return self

    def pipeline_key(self) -> str:
        """A stable digest of the pipeline (everything but seeds and budget), for grouping runs."""
        d = self.model_dump(mode="json")
        for k in ("seed", "epochs", "max_steps", "bf16", "cache_teacher", "batch_size", "max_length"):
            d["training"].pop(k, None)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str | bytes) -> KDConfig:
        """Parse and validate; raise :class:`ConfigError` with every problem on failure."""
        try:
            return cls.model_validate_json(text)
        except Exception as exc:  # pydantic.ValidationError and JSON errors
            raise ConfigError(f"invalid KD config: {exc}") from exc

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KDConfig:
        try:
            return cls.model_validate(data)
        except Exception as exc:
            raise ConfigError(f"invalid KD config: {exc}") from exc

    def flat(self) -> dict[str, Any]:
        """A flat ``section.field`` mapping (for tables, sweep records and meta-learner features)."""
        out: dict[str, Any] = {}
        for section, values in self.model_dump(mode="json").items():
            for key, value in values.items():
                out[f"{section}.{key}"] = value
        return out


class StudentSpec(_Strict):
    """How to obtain the student. Exactly one of the three forms:

    - ``checkpoint``: a local Hugging Face folder;
    - ``layers`` (teacher layer indices, 0-based) or ``num_layers`` (K evenly spaced teacher
      layers): derived from the teacher, DistilBERT-style (embeddings and kept layers copied);
    - ``fresh``: a new randomly initialised model of the teacher's family with the given
      ``num_layers`` / ``hidden_size`` / ``num_heads`` / ``intermediate_size``.
    """

    checkpoint: ModelPath | None = None
    layers: tuple[Annotated[int, Field(ge=0, lt=MAX_LAYERS)], ...] | None = Field(None, max_length=MAX_LAYERS)
    num_layers: int | None = Field(None, ge=1, le=MAX_LAYERS)
    fresh: bool = False
    hidden_size: int | None = Field(None, ge=8, le=MAX_HIDDEN)
    num_heads: int | None = Field(None, ge=1, le=MAX_HEADS)
    intermediate_size: int | None = Field(None, ge=8, le=MAX_INTERMEDIATE)

    @model_validator(mode="after")
    def _check(self) -> StudentSpec:
        forms = [
            self.checkpoint is not None,
            self.layers is not None,
            self.num_layers is not None and not self.fresh,
            self.fresh,
        ]
        if sum(forms) != 1:
            raise ValueError("student: give exactly one of checkpoint, layers, num_layers, fresh")
        if self.fresh and self.num_layers is None:
            raise ValueError("student.fresh needs num_layers")
        if self.layers is not None and (
            not self.layers or len(set(self.layers)) != len(self.layers) or min(self.layers) < 0
        ):
            raise ValueError("student.layers must be distinct non-negative teacher layer indices")
        if not self.fresh and (self.hidden_size or self.num_heads or self.intermediate_size):
            raise ValueError("student.hidden_size/num_heads/intermediate_size need fresh=true")
        if self.hidden_size and self.num_heads and self.hidden_size % self.num_heads:
            raise ValueError("student.hidden_size must be divisible by num_heads")
        return self

    def describe(self) -> str:
        if self.checkpoint:
            return self.checkpoint
        if self.layers is not None:
            return "layers:" + ",".join(map(str, self.layers))
        if self.fresh:
            return f"fresh:L{self.num_layers}-H{self.hidden_size or 'T'}"
        return f"derived:{self.num_layers}"


class TeacherTrainingConfig(_Strict):
    """Fine-tuning of a teacher that has no head for the task (cached by content)."""

    epochs: int = Field(3, ge=1, le=50)
    learning_rate: float = Field(5e-5, gt=0.0, lt=1.0)
    batch_size: int = Field(32, ge=1, le=1024)
    max_length: int = Field(128, ge=8, le=2048)
    seed: Seed = 42


class DistillSpec(_Strict):
    """A full distillation run: dataset + teacher + student + KD pipeline + run options."""

    dataset: str = Field(description="built-in dataset name or a file path")
    teacher: str = Field("minilm-l6", description="built-in teacher name or a local HF folder")
    student: StudentSpec = StudentSpec(num_layers=2)
    kd_config: KDConfig = KDConfig()
    teacher_training: TeacherTrainingConfig = TeacherTrainingConfig()
    train_no_kd_baseline: bool = Field(False, description="also train the student without KD")
    measure_latency: bool = True
    dataset_options: dict[str, Any] = Field(default_factory=dict, description="column names etc.")


def kd_config_schema() -> dict[str, Any]:
    """The JSON schema of :class:`KDConfig` (printed by ``autodistiller config schema``)."""
    return KDConfig.model_json_schema()


@dataclass(frozen=True)
class ModelDescriptor:
    """What the recommender and the compatibility checks know about a teacher or student.

    Torch-free. Every field but ``name`` may be missing (imported history lacks most).
    ``tokenizer_id`` is a digest of the vocabulary: equal ids mean aligned token positions.
    """

    name: str
    family: str | None = None  # e.g. "bert", "mpnet"
    num_layers: int | None = None
    hidden_size: int | None = None
    num_params: int | None = None
    num_heads: int | None = None
    tokenizer_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelDescriptor:
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})


def check_compatible(
    config: KDConfig,
    *,
    task_kind: TaskKind,
    teacher: ModelDescriptor | None = None,
    student: ModelDescriptor | None = None,
) -> None:
    """Raise a :class:`ConfigError` naming the reason if ``config`` cannot run in this context.

    Args:
        config: The pipeline.
        task_kind: ``classification`` or ``regression``.
        teacher: Teacher facts, if known.
        student: Student facts, if known.

    Raises:
        ConfigError: ce/kl KD on regression (identically zero with one output), mixup's soft
            targets on regression with a hard-label weight are fine but KD must be mse.
        IncompatibleModelsError: a token-level loss across different tokenizers, an attention
            loss across different head counts, or a student deeper than the teacher under skip/last.
    """
    if task_kind == "regression" and config.prediction.loss in ("ce", "kl") and config.weights.kd > 0:
        raise ConfigError(
            f"prediction.loss={config.prediction.loss!r} is identically zero for regression "
            "(one output); use prediction.loss='mse'"
        )
    if teacher is None or student is None:
        return
    inter = config.intermediate
    if config.weights.intermediate == 0 or inter.loss == "none":
        return
    if (
        inter.loss in TOKEN_LEVEL_LOSSES
        and teacher.tokenizer_id
        and student.tokenizer_id
        and teacher.tokenizer_id != student.tokenizer_id
    ):
        raise IncompatibleModelsError(
            f"intermediate.loss={inter.loss!r} compares token positions, but teacher and student use "
            "different tokenizers; use a [CLS]-level loss (pkd, mi) or intermediate.loss='none'"
        )
    if (
        inter.loss == "att_mse"
        and teacher.num_heads
        and student.num_heads
        and teacher.num_heads != student.num_heads
    ):
        raise IncompatibleModelsError(
            f"intermediate.loss='att_mse' needs equal attention head counts "
            f"(teacher {teacher.num_heads}, student {student.num_heads})"
        )
    if (
        inter.strategy in ("skip", "last")
        and teacher.num_layers
        and student.num_layers
        and student.num_layers > teacher.num_layers
    ):
        raise IncompatibleModelsError(
            f"strategy {inter.strategy!r} maps student layers onto teacher layers, but the student "
            f"has {student.num_layers} layers and the teacher only {teacher.num_layers}"
        )
