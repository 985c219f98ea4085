"""Trainer callback that turns Trainer events into protocol lines and honours cancellation.

Cancellation is cooperative: the SIGTERM handler only flips ``CancelState.requested``; at the
end of the current optimizer step this callback asks the Trainer to save a checkpoint and stop.
That keeps the checkpoint consistent (never written mid-step).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from transformers import TrainerCallback

from .events import CancelState, Emitter

# Trainer/TRL log keys forwarded as-is (besides the renamed standard ones and every rewards/* key).
_PASSTHROUGH = (
    "grad_norm", "epoch", "learning_rate", "kl", "entropy", "num_tokens",
    "completions/mean_length", "mean_token_accuracy",
)  # fmt: skip


class ProgressCallback(TrainerCallback):
    def __init__(self, emitter: Emitter, cancel: CancelState, output_dir: Path):
        self.emitter = emitter
        self.cancel = cancel
        self.output_dir = output_dir
        self.total_steps: int | None = None
        self.cancelled_at: int | None = None
        self.checkpoints: list[tuple[int, Path]] = []
        self._last_time: float | None = None
        self._last_tokens: float | None = None
        self._last_step = 0
        self._resumed = False

    def on_train_begin(self, args, state, control, **kwargs):
        self.total_steps = state.max_steps
        self._last_time = time.monotonic()
        self._last_step = state.global_step
        self._resumed = state.global_step > 0  # cumulative token counters restart on resume
        self.emitter.emit({"type": "status", "status": "running", "total_steps": state.max_steps})
        if state.global_step:
            self.emitter.log(f"resuming at step {state.global_step}/{state.max_steps}")

    def on_step_end(self, args, state, control, **kwargs):
        if self.cancel.requested and not control.should_training_stop:
            self.cancelled_at = state.global_step
            control.should_save = True
            control.should_training_stop = True
            self.emitter.log(
                f"{self.cancel.signal_name or 'cancel'} received: stopping after step {state.global_step}"
            )
        return control

    def on_save(self, args, state, control, **kwargs):
        path = (Path(args.output_dir) / f"checkpoint-{state.global_step}").resolve()
        self.checkpoints.append((state.global_step, path))
        self.emitter.emit({"type": "checkpoint", "step": state.global_step, "path": str(path), "final": False})

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = dict(logs or {})
        if "train_runtime" in logs:  # the summary the Trainer logs once at the end
            loss = logs.get("train_loss")
            loss_s = f" train_loss={loss:.4f}" if isinstance(loss, (int, float)) else ""
            self.emitter.log(f"training finished in {logs['train_runtime']:.1f} s{loss_s}")
            return
        if any(k.startswith("eval_") for k in logs):
            return
        now = time.monotonic()
        step = state.global_step
        event: dict = {"type": "metrics", "step": step, "total_steps": state.max_steps}
        if "loss" in logs:
            event["loss"] = logs["loss"]
        for key in _PASSTHROUGH:
            if key in logs:
                event[key] = logs[key]
        if "reward" in logs:
            event["reward_mean"] = logs["reward"]
        if "reward_std" in logs:
            event["reward_std"] = logs["reward_std"]
        for key, value in logs.items():
            if key.startswith("rewards/"):
                event[key] = value
        tokens = logs.get("num_tokens")
        if self._last_time is not None and now > self._last_time:
            elapsed = now - self._last_time
            steps = max(1, step - self._last_step)
            event["seconds_per_step"] = elapsed / steps
            if isinstance(tokens, (int, float)) and (self._last_tokens is not None or not self._resumed):
                prev = self._last_tokens if self._last_tokens is not None else 0.0
                if tokens >= prev:
                    event["tokens_per_second"] = (tokens - prev) / elapsed
        if isinstance(tokens, (int, float)):
            self._last_tokens = float(tokens)
        self._last_time, self._last_step = now, step
        self.emitter.emit(event)
        self.emitter.log(_step_line(event))


def _step_line(event: dict) -> str:
    parts = [f"step {event['step']}/{event['total_steps']}"]
    for key, label, fmt in (
        ("loss", "loss", ".4f"),
        ("reward_mean", "reward", ".4f"),
        ("learning_rate", "lr", ".2e"),
        ("grad_norm", "grad_norm", ".3f"),
        ("tokens_per_second", "tok/s", ".1f"),
        ("seconds_per_step", "s/step", ".2f"),
    ):
        value = event.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            parts.append(f"{label}={value:{fmt}}")
    return " ".join(parts)
