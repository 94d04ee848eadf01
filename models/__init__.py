"""AutoDistiller KD engine.

Importing ``models`` (and ``models.config``) does not import torch; the training code lives in
submodules that do.
"""

from models.config import (
    DistillSpec,
    KDConfig,
    ModelDescriptor,
    StudentSpec,
    check_compatible,
    kd_config_schema,
)
from models.errors import AutoDistillerError, ConfigError, DatasetError

__all__ = [
    "AutoDistillerError",
    "ConfigError",
    "DatasetError",
    "DistillSpec",
    "KDConfig",
    "ModelDescriptor",
    "StudentSpec",
    "check_compatible",
    "kd_config_schema",
]

__version__ = "0.1.0"
