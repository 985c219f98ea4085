"""Build the TRL trainer a spec asks for, run it, and write checkpoints and the final adapter.

Kept free of tuneyard.api / store / settings on purpose: everything comes from the spec, so the
same code runs in a local subprocess, on a Ray worker or on a remote VM.

Output layout (``output_dir``):
  checkpoint-<step>/   full Trainer checkpoints (adapter or model + tokenizer + optimizer/scheduler/RNG
                       state), resumable with ``resume_from``
  final/               the trained adapter (or full model when use_lora=false) + tokenizer + tuneyard.json
  merged/              base model with the adapter merged in (only with merge_adapter=true)
"""

from __future__ import annotations

import importlib.util
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import modelhub
from .callbacks import ProgressCallback
from .events import CancelState, Emitter, JobFailure
from .spec import SpecError, TrainingSpec, resolve_hyperparameters

_NO_PERIODIC_SAVES = 10**9  # save_steps when checkpoint_every is unset: only the end-of-training save


@dataclass
class RunContext:
    """What the entry point needs to report a failure well (the step reached so far)."""

    trainer: Any = None
    result_status: str | None = None
    extras: dict = field(default_factory=dict)

    @property
    def step(self) -> int | None:
        return None if self.trainer is None else int(self.trainer.state.global_step)


def _pick_device(spec: TrainingSpec, hp: dict) -> tuple[str, bool]:
    """('cpu'|'cuda', use_bf16)."""
    import torch

    has_cuda = torch.cuda.is_available()
    if spec.device == "cuda" and not has_cuda:
        raise JobFailure("device_unavailable", "device 'cuda' requested but no CUDA GPU is visible")
    device = "cuda" if spec.device in ("cuda", "auto") and has_cuda else "cpu"
    if hp["load_in_4bit"]:
        if device != "cuda":
            raise JobFailure(
                "unsupported_hyperparameter",
                "load_in_4bit needs a CUDA GPU with bitsandbytes; this job runs on CPU (set load_in_4bit=false)",
            )
        if importlib.util.find_spec("bitsandbytes") is None:
            raise JobFailure("unsupported_hyperparameter", "load_in_4bit needs the bitsandbytes package")
    return device, torch.cuda.is_bf16_supported() if device == "cuda" else cpu_has_native_bf16()


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX512-BF16 or AMX). Then training autocasts to
    bf16 as TRL's own default does (about 1.45x the fp32 speed on the 2-core CI machine); on other
    CPUs bf16 is emulated and slower than fp32, so it stays off."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no cheap way to tell, fp32 is the safe choice
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def _load_model(path: Path, hp: dict, device: str, bf16: bool):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # On a GPU the weights are loaded in bf16; on a CPU they stay fp32 and bf16 is autocast (as TRL does).
    kwargs: dict[str, Any] = {"dtype": torch.bfloat16 if bf16 and device == "cuda" else torch.float32}
    if hp["load_in_4bit"]:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=kwargs["dtype"],
            bnb_4bit_use_double_quant=True,
        )
        kwargs["device_map"] = {"": 0}
    model = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
    if hp["load_in_4bit"]:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=hp["gradient_checkpointing"]
        )
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def _prompt_length(tokenizer, prompt) -> int:
    if isinstance(prompt, list):
        ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return len(ids)
    return len(tokenizer(prompt, add_special_tokens=False)["input_ids"])


def _drop_long_prompts(dataset, tokenizer, limit: int | None, emitter: Emitter):
    """TRL 1.x trainers no longer cut prompts for GRPO/DPO; skip over-long ones instead."""
    if not limit:
        return dataset
    keep = [i for i, p in enumerate(dataset["prompt"]) if _prompt_length(tokenizer, p) <= limit]
    if not keep:
        raise JobFailure("dataset_error", f"every prompt is longer than max_prompt_length={limit} tokens")
    if len(keep) < len(dataset):
        emitter.log(f"skipped {len(dataset) - len(keep)} rows whose prompt exceeds {limit} tokens")
        dataset = dataset.select(keep)
    return dataset


def _common_args(spec: TrainingSpec, hp: dict, device: str, bf16: bool) -> dict[str, Any]:
    max_steps = hp["max_steps"] if hp["max_steps"] else -1
    return {
        "output_dir": str(Path(spec.output_dir).resolve()),
        "per_device_train_batch_size": hp["batch_size"],
        "gradient_accumulation_steps": hp["gradient_accumulation_steps"],
        "learning_rate": float(hp["learning_rate"]),
        "num_train_epochs": float(hp["num_epochs"]),
        "max_steps": max_steps,
        "lr_scheduler_type": hp["lr_scheduler_type"],
        "warmup_steps": float(hp["warmup_ratio"]) if hp["warmup_ratio"] else 0,
        "weight_decay": float(hp["weight_decay"]),
        "max_grad_norm": float(hp["max_grad_norm"]),
        "logging_strategy": "steps",
        "logging_steps": hp["logging_steps"],
        "save_strategy": "steps",
        "save_steps": hp["checkpoint_every"] or _NO_PERIODIC_SAVES,
        "eval_strategy": "no",
        "report_to": "none",
        "push_to_hub": False,
        "disable_tqdm": True,
        "log_level": "warning",
        "dataloader_num_workers": 0,
        "seed": hp["seed"],
        "use_cpu": device == "cpu",
        "bf16": bf16,
        "fp16": False,
        # TRL turns checkpointing on by default; on a small model on CPU it only costs time.
        "gradient_checkpointing": hp["gradient_checkpointing"],
    }


def _peft_config(hp: dict):
    from peft import LoraConfig

    targets = hp["lora_target_modules"]
    return LoraConfig(
        r=hp["lora_r"],
        lora_alpha=hp["lora_alpha"],
        lora_dropout=float(hp["lora_dropout"]),
        target_modules=targets if isinstance(targets, str) else list(targets),
        bias="none",
        task_type="CAUSAL_LM",
    )


def _classify_resume(path_str: str | None) -> tuple[str | None, Path | None]:
    """('trainer'|'adapter'|'model', path) for resume_from, or (None, None)."""
    if not path_str:
        return None, None
    path = Path(path_str).expanduser().resolve()
    if (path / "trainer_state.json").is_file():
        return "trainer", path
    if (path / "adapter_config.json").is_file():
        return "adapter", path
    if (path / "config.json").is_file():
        return "model", path
    raise JobFailure("invalid_spec", f"resume_from {path_str} is not a checkpoint, adapter or model folder")


def _build_trainer(spec, hp, model, tokenizer, dataset, peft_config, callbacks, common, emitter):
    method = spec.method
    if method == "sft":
        from trl import SFTConfig, SFTTrainer

        args = SFTConfig(**common, max_length=hp["max_length"], packing=False)
        return SFTTrainer(
            model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
            peft_config=peft_config, callbacks=callbacks,
        )  # fmt: skip
    if method == "dpo":
        from trl import DPOConfig, DPOTrainer

        args = DPOConfig(**common, max_length=hp["max_length"], beta=float(hp["beta"]))
        return DPOTrainer(
            model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
            peft_config=peft_config, callbacks=callbacks,
        )  # fmt: skip
    from trl import GRPOConfig, GRPOTrainer

    from .rewards import load_reward_functions

    reward_funcs = load_reward_functions(spec.reward_functions, spec.reward_timeout_seconds, hp)
    emitter.log("reward functions: " + ", ".join(f"{f.__name__} (x{f.runner.weight:g})" for f in reward_funcs))
    use_vllm = bool(hp["use_vllm"])
    if use_vllm and (common["use_cpu"] or importlib.util.find_spec("vllm") is None):
        emitter.log("use_vllm ignored: needs a CUDA GPU and the vllm package; generating with transformers")
        use_vllm = False
    args = GRPOConfig(
        **common,
        num_generations=hp["num_generations"],
        max_completion_length=hp["max_completion_length"],
        temperature=float(hp["temperature"]),
        beta=float(hp["beta"]),
        reward_weights=[float(f.runner.weight) for f in reward_funcs],
        use_vllm=use_vllm,
        log_completions=False,
    )
    return GRPOTrainer(
        model=model, reward_funcs=reward_funcs, args=args, train_dataset=dataset,
        processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks,
    )  # fmt: skip


def run(spec: TrainingSpec, emitter: Emitter, cancel: CancelState, ctx: RunContext) -> str:
    """Train; return 'completed' or 'cancelled'. Failures raise (JobFailure or anything else)."""
    import transformers

    transformers.logging.set_verbosity_warning()
    transformers.logging.disable_progress_bar()
    try:
        import datasets

        datasets.disable_progress_bars()
    except ImportError:  # pragma: no cover
        pass

    try:
        hp = resolve_hyperparameters(spec.method, spec.hyperparameters)
    except SpecError as exc:
        raise JobFailure("invalid_spec", str(exc)) from exc
    device, bf16 = _pick_device(spec, hp)
    transformers.set_seed(hp["seed"])
    out = Path(spec.output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    resume_kind, resume_path = _classify_resume(spec.resume_from)

    t0 = time.monotonic()
    try:
        resolved = modelhub.resolve_model(spec.base_model)
    except modelhub.ModelNotFound as exc:
        raise JobFailure("model_not_found", str(exc)) from exc
    model_path = resume_path if resume_kind == "model" else resolved.path
    model, tokenizer = _load_model(model_path, hp, device, bf16)
    n_params = sum(p.numel() for p in model.parameters())
    emitter.log(
        f"model {resolved.id} ({resolved.source}, {n_params / 1e6:.0f}M params) loaded in "
        f"{time.monotonic() - t0:.1f} s on {device}{' (bf16)' if bf16 else ''}"
    )

    from .data import load_dataset

    dataset = load_dataset(spec.dataset_path, spec.dataset_format)
    if spec.method in ("dpo", "grpo"):
        dataset = _drop_long_prompts(dataset, tokenizer, hp["max_prompt_length"], emitter)
    emitter.log(f"dataset: {len(dataset)} rows ({spec.dataset_format}) for {spec.method.upper()}")

    peft_config = None
    if hp["use_lora"]:
        if resume_kind == "adapter":
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(resume_path), is_trainable=True)
            emitter.log(f"continuing from adapter {resume_path}")
        else:
            peft_config = _peft_config(hp)
    elif resume_kind == "adapter":
        raise JobFailure("invalid_spec", "resume_from points at a LoRA adapter but use_lora is false")

    callback = ProgressCallback(emitter, cancel, out)
    common = _common_args(spec, hp, device, bf16)
    trainer = _build_trainer(spec, hp, model, tokenizer, dataset, peft_config, [callback], common, emitter)
    ctx.trainer = trainer
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    emitter.log(f"{spec.method.upper()} trainer ready: {trainable / 1e6:.2f}M trainable parameters")

    if cancel.requested:
        emitter.log("cancelled before training started")
        return "cancelled"
    resume_arg = str(resume_path) if resume_kind == "trainer" else None
    trainer.train(resume_from_checkpoint=resume_arg)

    if callback.cancelled_at is not None:
        return "cancelled"
    _save_final(spec, hp, trainer, tokenizer, resolved, out, emitter)
    return "completed"


def _save_final(spec, hp, trainer, tokenizer, resolved, out: Path, emitter: Emitter) -> None:
    step = int(trainer.state.global_step)
    final_dir = out / "final"
    trainer.save_model(str(final_dir))
    tokenizer.save_pretrained(str(final_dir))
    meta = {
        "job_id": spec.job_id,
        "method": spec.method,
        "base_model": resolved.id,
        "base_model_path": str(resolved.path),
        "adapter": bool(hp["use_lora"]),
        "step": step,
    }
    event: dict[str, Any] = {
        "type": "checkpoint", "step": step, "path": str(final_dir), "final": True,
        "adapter": bool(hp["use_lora"]),
    }  # fmt: skip
    if hp["merge_adapter"]:
        if hp["use_lora"]:
            model = trainer.accelerator.unwrap_model(trainer.model)
            merged = model.merge_and_unload()
            merged_dir = out / "merged"
            merged.save_pretrained(str(merged_dir), safe_serialization=True)
            tokenizer.save_pretrained(str(merged_dir))
            event["merged_path"] = str(merged_dir)
            meta["merged_path"] = str(merged_dir)
            emitter.log(f"merged model written to {merged_dir}")
        else:
            emitter.log("merge_adapter ignored: full fine-tune, final/ already holds the whole model")
    (final_dir / "tuneyard.json").write_text(json.dumps(meta, indent=2))
    emitter.emit(event)
