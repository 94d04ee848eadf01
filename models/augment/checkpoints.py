"""Loading the local Hugging Face checkpoints of the model-based augmenters, failing early."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models.availability import checkpoint_problem
from models.errors import ComponentUnavailableError


def load_local_checkpoint(folder: str | Path | None, auto_class: str, *, what: str, hint: str, device: str):
    """Load a tokenizer and model from a local folder, never from a hub.

    Args:
        folder: The checkpoint folder (None when not configured).
        auto_class: Name of the ``transformers`` auto class, e.g. ``"AutoModelForMaskedLM"``.
        what: Which component needs it, for the error message.
        hint: What the user should configure, for the error message.
        device: Torch device to move the model to.

    Returns:
        ``(tokenizer, model)``, the model in eval mode on ``device``.

    Raises:
        ComponentUnavailableError: The folder is missing, incomplete, cannot be loaded, or lacks
            weights of the requested model (they would be initialised at random).
    """
    problem = checkpoint_problem(folder)
    if problem:
        raise ComponentUnavailableError(f"{what}: {problem}; {hint}")
    import transformers

    model_cls: Any = getattr(transformers, auto_class)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        model, info = model_cls.from_pretrained(str(folder), local_files_only=True, output_loading_info=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ComponentUnavailableError(
            f"{what}: cannot load {str(folder)!r} as {auto_class}: {exc}"
        ) from exc
    missing = sorted(info.get("missing_keys") or ())
    if missing:
        # transformers would initialise these randomly (e.g. an encoder without an MLM head):
        # the augmenter would then emit noise, so refuse instead.
        shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise ComponentUnavailableError(
            f"{what}: {str(folder)!r} lacks trained weights for {auto_class} ({shown}); {hint}"
        )
    model.to(device).eval()
    return tokenizer, model
