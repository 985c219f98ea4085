"""Hyperparameter names the clients send, mapped onto the runner's names, with type checks.

The veri CLI, the Synth examples and OpenAI each spell some knobs differently; they all land on
one name here. An unknown name is an error (a silently dropped knob is a wasted GPU-hour).
"""

from __future__ import annotations

from typing import Any

from tuneyard.errors import InvalidRequest

# alias -> runner name
ALIASES = {
    "n_epochs": "num_epochs", "epochs": "num_epochs",
    "global_batch_size": "batch_size", "per_device_train_batch_size": "batch_size",
    "rollouts_per_prompt": "num_generations",
    "max_response_length": "max_completion_length", "max_new_tokens": "max_completion_length",
    "max_seq_length": "max_length",
    "kl_coef": "beta",
    "lora_rank": "lora_r",
    "use_qlora": "load_in_4bit",
    "save_steps": "checkpoint_every",
    "lr": "learning_rate",
}

# runner name -> (type, minimum) ; minimum None = no bound
SPEC: dict[str, tuple[type | tuple, float | None]] = {
    "learning_rate": (float, 0.0), "num_epochs": (float, 0.0), "max_steps": (int, 1), "batch_size": (int, 1),
    "gradient_accumulation_steps": (int, 1), "num_generations": (int, 2), "max_completion_length": (int, 1),
    "max_prompt_length": (int, 1), "max_length": (int, 8), "beta": (float, 0.0), "lora_r": (int, 1),
    "lora_alpha": (float, 0.0), "lora_dropout": (float, 0.0), "lora_target_modules": ((list, str), None),
    "use_lora": (bool, None), "load_in_4bit": (bool, None), "checkpoint_every": (int, 1), "seed": (int, None),
    "temperature": (float, 0.0), "warmup_ratio": (float, 0.0), "weight_decay": (float, 0.0),
    "lr_scheduler_type": (str, None), "logging_steps": (int, 1), "merge_adapter": (bool, None),
    "use_vllm": (bool, None), "gradient_checkpointing": (bool, None), "max_grad_norm": (float, 0.0),
}


def normalize(raw: dict[str, Any] | None) -> dict[str, Any]:
    """Runner-named, type-checked hyperparameters; InvalidRequest names the offending key."""
    out: dict[str, Any] = {}
    for name, value in (raw or {}).items():
        target = ALIASES.get(name, name)
        param = f"hyperparameters.{name}"
        if target not in SPEC:
            known = sorted(set(SPEC) | set(ALIASES))
            raise InvalidRequest(f"Unknown hyperparameter {name!r}. Known: {', '.join(known)}", param=param,
                                 code="unknown_hyperparameter")
        if value is None or value == "auto":
            continue
        if target in out:
            raise InvalidRequest(f"{name!r} is given twice (as {target!r} too)", param=param)
        out[target] = _coerce(value, SPEC[target], param)
    if out.get("lora_dropout", 0) >= 1:
        raise InvalidRequest("lora_dropout must be below 1", param="hyperparameters.lora_dropout")
    return out


def _coerce(value: Any, spec: tuple, param: str) -> Any:
    kind, minimum = spec
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise InvalidRequest(f"{param} must be true or false", param=param)
    if kind == (list, str):
        if isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            return value
        raise InvalidRequest(f"{param} must be a string or a list of strings", param=param)
    if kind is str:
        if isinstance(value, str):
            return value
        raise InvalidRequest(f"{param} must be a string", param=param)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequest(f"{param} must be a number", param=param)
    if kind is int:
        if float(value) != int(value):
            raise InvalidRequest(f"{param} must be a whole number", param=param)
        value = int(value)
    else:
        value = float(value)
    if minimum is not None and value < minimum:
        raise InvalidRequest(f"{param} must be at least {minimum}", param=param)
    return value
