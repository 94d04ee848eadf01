"""KD losses: prediction-layer losses, intermediate-layer losses and the layer mapping (spec §2–§5).

Losses are registry keys. ``PREDICTION_LOSSES`` holds ``models.config.PREDICTION_LOSSES`` and
``INTERMEDIATE_LOSSES`` holds ``models.config.INTERMEDIATE_LOSSES`` minus ``"none"``. Importing
this package registers every loss.
"""

from models.losses import intermediate as _intermediate  # noqa: F401  (registers the token/cls losses)
from models.losses.base import (
    INTERMEDIATE_LOSSES,
    IntermediateLoss,
    build_intermediate_loss,
    make_projection,
)
from models.losses.mapping import LayerMatcher, emd_flow, layer_pairs
from models.losses.mi import InfoNCELoss, MIAlphaLoss, NWJLoss, TUBALoss, loo_log_mean_exp, mi_lower_bound
from models.losses.prediction import PREDICTION_LOSSES, hard_loss, prediction_loss

__all__ = [
    "INTERMEDIATE_LOSSES",
    "PREDICTION_LOSSES",
    "InfoNCELoss",
    "IntermediateLoss",
    "LayerMatcher",
    "MIAlphaLoss",
    "NWJLoss",
    "TUBALoss",
    "build_intermediate_loss",
    "emd_flow",
    "hard_loss",
    "layer_pairs",
    "loo_log_mean_exp",
    "make_projection",
    "mi_lower_bound",
    "prediction_loss",
]
