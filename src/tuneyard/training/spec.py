"""The job spec: the one self-contained JSON document a training runner needs.

The scheduler writes it, the runner (``python -m tuneyard.training SPEC.json``) reads it. For a runner
on this machine it carries local paths (dataset, reward files, output folder); for one on a Ray node
or an SSH host the inputs are blob URLs and ``output_url`` says where checkpoints go (staging.py).

This module is imported by the API for validation (``KNOWN_HYPERPARAMETERS``, ``validate_hyperparameters``),
so it must stay free of heavy imports (no torch / transformers / trl here).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

METHODS = ("sft", "dpo", "grpo")
DATASET_FORMATS = ("messages", "prompt_completion", "preference", "prompt")
# Which dataset formats each method can train on.
METHOD_FORMATS = {
    "sft": ("messages", "prompt_completion"),
    "dpo": ("preference",),
    "grpo": ("prompt",),
}
REWARD_FORMATS = ("trl", "miles")
DEVICES = ("auto", "cpu", "cuda")

# name -> accepted python types. Everything is optional; see default_hyperparameters().
_HP_TYPES: dict[str, tuple[type, ...]] = {
    "learning_rate": (int, float),
    "num_epochs": (int, float),
    "max_steps": (int,),
    "batch_size": (int,),
    "gradient_accumulation_steps": (int,),
    "num_generations": (int,),
    "max_completion_length": (int,),
    "max_prompt_length": (int,),
    "max_length": (int,),
    "beta": (int, float),
    "lora_r": (int,),
    "lora_alpha": (int, float),
    "lora_dropout": (int, float),
    "lora_target_modules": (str, list),
    "use_lora": (bool,),
    "load_in_4bit": (bool,),
    "checkpoint_every": (int,),
    "seed": (int,),
    "temperature": (int, float),
    "warmup_ratio": (int, float),
    "weight_decay": (int, float),
    "lr_scheduler_type": (str,),
    "logging_steps": (int,),
    "merge_adapter": (bool,),
    "use_vllm": (bool,),
    "gradient_checkpointing": (bool,),
    "max_grad_norm": (int, float),
}
KNOWN_HYPERPARAMETERS: frozenset[str] = frozenset(_HP_TYPES)

_POSITIVE_INTS = {
    "batch_size", "gradient_accumulation_steps", "num_generations", "max_completion_length",
    "max_prompt_length", "max_length", "lora_r", "checkpoint_every", "logging_steps",
}  # fmt: skip
_LR_SCHEDULERS = {
    "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
    "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "warmup_stable_decay",
}  # fmt: skip


class SpecError(ValueError):
    """The spec file is malformed or inconsistent (maps to the ``invalid_spec`` error code)."""


@dataclass
class RewardFunctionSpec:
    path: str
    format: str = "trl"
    weight: float = 1.0
    name: str | None = None


@dataclass
class TrainingSpec:
    job_id: str
    method: str
    base_model: str
    dataset_path: str
    dataset_format: str
    output_dir: str
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    reward_functions: list[RewardFunctionSpec] = field(default_factory=list)
    resume_from: str | None = None
    device: str = "auto"
    reward_timeout_seconds: float = 30.0
    # Where checkpoints are published (s3:// or file://) by a runner away from tuneyard; see staging.py.
    output_url: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def default_hyperparameters(method: str, use_lora: bool = True) -> dict[str, Any]:
    """CPU-friendly defaults. The runner fills every missing key from here."""
    lr = {
        ("sft", True): 2e-4, ("sft", False): 2e-5,
        ("dpo", True): 5e-5, ("dpo", False): 5e-7,
        ("grpo", True): 1e-5, ("grpo", False): 1e-6,
    }[(method, use_lora)]  # fmt: skip
    num_generations = 4
    return {
        "learning_rate": lr,
        "num_epochs": 1,
        "max_steps": None,
        # GRPO counts completions per device batch: one prompt x num_generations per step.
        "batch_size": {"sft": 4, "dpo": 2, "grpo": num_generations}[method],
        "gradient_accumulation_steps": 1,
        "num_generations": num_generations,
        "max_completion_length": 64,
        "max_prompt_length": None,
        "max_length": 512,
        "beta": 0.1 if method == "dpo" else 0.0,
        "lora_r": 16,
        "lora_alpha": 32,
        "lora_dropout": 0.05,
        "lora_target_modules": "all-linear",
        "use_lora": True,
        "load_in_4bit": False,
        "checkpoint_every": None,
        "seed": 42,
        "temperature": 1.0,
        "warmup_ratio": 0.0,
        "weight_decay": 0.0,
        "lr_scheduler_type": "linear",
        "logging_steps": 1,
        "merge_adapter": False,
        "use_vllm": False,
        "gradient_checkpointing": False,
        "max_grad_norm": 1.0,
    }


def validate_hyperparameters(hp: dict[str, Any]) -> list[str]:
    """Problems with a (normalized) hyperparameter dict; empty when fine. Shared with the API."""
    problems: list[str] = []
    if not isinstance(hp, dict):
        return ["hyperparameters must be an object"]
    for key, value in hp.items():
        if key not in _HP_TYPES:
            problems.append(f"unknown hyperparameter {key!r}")
            continue
        if value is None:
            continue
        types = _HP_TYPES[key]
        if isinstance(value, bool) and bool not in types:
            problems.append(f"{key} must be a number, not a boolean")
            continue
        if not isinstance(value, types):
            names = "/".join(t.__name__ for t in types)
            problems.append(f"{key} must be {names}, got {type(value).__name__}")
            continue
        if key in _POSITIVE_INTS and value < 1:
            problems.append(f"{key} must be >= 1")
        elif key in ("learning_rate", "num_epochs", "temperature") and value <= 0:
            problems.append(f"{key} must be > 0")
        elif key == "max_steps" and value < 1 and value != -1:
            problems.append("max_steps must be >= 1")
        elif key in ("warmup_ratio", "lora_dropout") and not 0 <= value < 1:
            problems.append(f"{key} must be in [0, 1)")
        elif key in ("beta", "weight_decay", "max_grad_norm") and value < 0:
            problems.append(f"{key} must be >= 0")
        elif key == "lr_scheduler_type" and value not in _LR_SCHEDULERS:
            problems.append(f"lr_scheduler_type must be one of {sorted(_LR_SCHEDULERS)}")
        elif key == "lora_target_modules" and isinstance(value, list):
            if not value or not all(isinstance(v, str) and v for v in value):
                problems.append("lora_target_modules must be 'all-linear' or a list of module names")
    return problems


def resolve_hyperparameters(method: str, hp: dict[str, Any]) -> dict[str, Any]:
    """Defaults overlaid with the given (non-null) values, after validation."""
    problems = validate_hyperparameters(hp)
    if problems:
        raise SpecError("invalid hyperparameters: " + "; ".join(problems))
    given = {k: v for k, v in hp.items() if v is not None}
    out = default_hyperparameters(method, use_lora=given.get("use_lora", True))
    if method == "grpo" and "batch_size" not in given and "num_generations" in given:
        out["batch_size"] = given["num_generations"]
    out.update(given)
    if method == "grpo":
        effective = out["batch_size"] * out["gradient_accumulation_steps"]
        if out["num_generations"] < 2:
            raise SpecError("num_generations must be >= 2 for GRPO (advantages compare completions)")
        if effective % out["num_generations"]:
            raise SpecError(
                f"for GRPO, batch_size x gradient_accumulation_steps ({effective}) must be a multiple "
                f"of num_generations ({out['num_generations']}): batch_size counts completions"
            )
    return out


def _require(data: dict, key: str, kind: type | tuple[type, ...] = str) -> Any:
    if key not in data or data[key] in (None, ""):
        raise SpecError(f"spec is missing {key!r}")
    if not isinstance(data[key], kind):
        raise SpecError(f"spec field {key!r} has the wrong type ({type(data[key]).__name__})")
    return data[key]


def parse_spec(data: dict[str, Any]) -> TrainingSpec:
    """Build and check a TrainingSpec from decoded JSON. Raises SpecError with a readable reason."""
    if not isinstance(data, dict):
        raise SpecError("spec must be a JSON object")
    method = _require(data, "method")
    if method not in METHODS:
        raise SpecError(f"method must be one of {METHODS}, got {method!r}")
    fmt = _require(data, "dataset_format")
    if fmt not in DATASET_FORMATS:
        raise SpecError(f"dataset_format must be one of {DATASET_FORMATS}, got {fmt!r}")
    if fmt not in METHOD_FORMATS[method]:
        raise SpecError(
            f"method {method!r} cannot train on dataset_format {fmt!r} "
            f"(expected one of {METHOD_FORMATS[method]})"
        )
    device = data.get("device") or "auto"
    if device not in DEVICES:
        raise SpecError(f"device must be one of {DEVICES}, got {device!r}")
    rewards = []
    for i, raw in enumerate(data.get("reward_functions") or []):
        if not isinstance(raw, dict) or not raw.get("path"):
            raise SpecError(f"reward_functions[{i}] must be an object with a 'path'")
        rf_format = raw.get("format") or "trl"
        if rf_format not in REWARD_FORMATS:
            raise SpecError(f"reward_functions[{i}].format must be one of {REWARD_FORMATS}")
        weight = raw.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise SpecError(f"reward_functions[{i}].weight must be a number")
        rewards.append(
            RewardFunctionSpec(path=raw["path"], format=rf_format, weight=float(weight), name=raw.get("name"))
        )
    if method == "grpo" and not rewards:
        raise SpecError("GRPO needs at least one reward function")
    timeout = data.get("reward_timeout_seconds", 30)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise SpecError("reward_timeout_seconds must be a positive number")
    hp = data.get("hyperparameters") or {}
    problems = validate_hyperparameters(hp)
    if problems:
        raise SpecError("invalid hyperparameters: " + "; ".join(problems))
    return TrainingSpec(
        job_id=_require(data, "job_id"),
        method=method,
        base_model=_require(data, "base_model"),
        dataset_path=_require(data, "dataset_path"),
        dataset_format=fmt,
        output_dir=_require(data, "output_dir"),
        hyperparameters=dict(hp),
        reward_functions=rewards,
        resume_from=data.get("resume_from") or None,
        device=device,
        reward_timeout_seconds=float(timeout),
        output_url=data.get("output_url") or None,
    )


def load_spec(path: str | Path) -> TrainingSpec:
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise SpecError(f"cannot read spec {path}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise SpecError(f"spec {path} is not valid JSON: {exc}") from exc
    return parse_spec(data)
