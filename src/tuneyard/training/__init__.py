"""The training job runner: ``python -m tuneyard.training SPEC.json``.

One process per job. It reads a self-contained JSON spec (see ``spec.py``), trains with TRL + PEFT,
writes checkpoints under the spec's ``output_dir`` and reports progress as JSON lines on stdout
(see ``events.py`` / ``callbacks.py``). It never imports tuneyard.api, tuneyard.store or
tuneyard.settings, so it runs unchanged on this machine, a Ray worker or a remote VM.

Importing this package is cheap (no torch): the API imports ``KNOWN_HYPERPARAMETERS`` and the
spec helpers from here to validate requests.
"""

from .spec import (
    DATASET_FORMATS,
    KNOWN_HYPERPARAMETERS,
    METHOD_FORMATS,
    METHODS,
    REWARD_FORMATS,
    RewardFunctionSpec,
    SpecError,
    TrainingSpec,
    default_hyperparameters,
    load_spec,
    parse_spec,
    resolve_hyperparameters,
    validate_hyperparameters,
)

__all__ = [
    "DATASET_FORMATS",
    "KNOWN_HYPERPARAMETERS",
    "METHOD_FORMATS",
    "METHODS",
    "REWARD_FORMATS",
    "RewardFunctionSpec",
    "SpecError",
    "TrainingSpec",
    "default_hyperparameters",
    "load_spec",
    "parse_spec",
    "resolve_hyperparameters",
    "validate_hyperparameters",
]
