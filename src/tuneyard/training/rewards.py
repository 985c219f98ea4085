"""Uploaded reward functions: load them by path and wrap them for TRL's GRPOTrainer.

Uploaded code runs only here, inside the job runner process, never in the API. Each call goes
through a worker thread with a timeout so a reward that hangs cannot stall the job forever: on a
timeout we raise a JobFailure marked ``hard_exit`` and the runner leaves with ``os._exit``
(a Python thread cannot be killed, so the process has to go).

Two calling conventions are supported:

* ``trl``: ``fn(prompts, completions, **kwargs) -> list[float]`` with plain-text prompts and
  completions and the extra dataset columns (e.g. ``answer``) as keyword lists. Functions without
  ``**kwargs`` get only the keywords they name.
* ``miles``: ``async def fn(args, sample, **kwargs) -> float``, called once per completion, where
  ``args`` holds the hyperparameters and ``sample`` has ``prompt``, ``response``, ``label`` (the
  ``answer`` column) and ``metadata`` (all extra columns of that row).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import importlib.util
import inspect
import math
import numbers
import sys
import traceback
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

from .events import JobFailure
from .spec import RewardFunctionSpec

# Keyword arguments TRL adds on its own; they are not dataset columns.
_TRL_EXTRAS = {"completion_ids", "trainer_state", "log_extra", "log_metric", "environments"}

_executor = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="reward")


def _load_module(path: Path, label: str):
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    mod_name = f"tuneyard_reward_{digest}_{label}".replace("-", "_")
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise JobFailure("reward_function_error", f"reward {label!r}: cannot load {path.name} as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module  # dataclasses/pickle inside user code look themselves up here
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:  # SyntaxError, ImportError, anything at import time
        sys.modules.pop(mod_name, None)
        traceback.print_exc(file=sys.stderr)
        raise JobFailure(
            "reward_function_error",
            f"reward {label!r} failed to load: {type(exc).__name__}: {exc}{_where(exc, path)}",
        ) from exc
    return module


def _fits(fn: Callable, fmt: str) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    names = {p.name for p in params}
    var_kw = any(p.kind is p.VAR_KEYWORD for p in params)
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if fmt == "miles":
        return inspect.iscoroutinefunction(fn) and len(positional) >= 2
    return ({"prompts", "completions"} <= names or ("completions" in names and var_kw)) and not (
        inspect.iscoroutinefunction(fn) and "sample" in names
    )


def _pick_function(module, fmt: str, label: str, path: Path) -> Callable:
    fn = getattr(module, "reward", None)
    if callable(fn):
        return fn
    functions = [
        obj
        for name, obj in vars(module).items()
        if inspect.isfunction(obj) and obj.__module__ == module.__name__ and not name.startswith("_")
    ]
    fitting = [f for f in functions if _fits(f, fmt)]
    if len(fitting) == 1:
        return fitting[0]
    expected = (
        "def reward(prompts, completions, **kwargs) -> list[float]"
        if fmt == "trl"
        else "async def reward(args, sample, **kwargs) -> float"
    )
    found = ", ".join(f.__name__ for f in functions) or "no functions"
    why = "several functions fit" if fitting else "no function fits"
    raise JobFailure(
        "reward_function_error",
        f"reward {label!r} ({path.name}): {why} the {fmt} signature ({found}); "
        f"name the entry point `reward`, e.g. {expected}",
    )


def _where(exc: BaseException, path: Path) -> str:
    """' (reward.py line N)' for the deepest frame inside the user's file, if any."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename) == path:
            line = frame.lineno
    return f" ({path.name} line {line})" if line else ""


def _text(value: Any, *, prompt: bool) -> str:
    """Plain text for a prompt/completion that TRL may hand over as a list of chat messages."""
    if isinstance(value, str) or value is None:
        return value or ""
    if isinstance(value, list):
        msgs = [m for m in value if isinstance(m, dict)]
        if prompt:
            users = [m for m in msgs if m.get("role") == "user"]
            msgs = users[-1:] or msgs
        return "".join(_content_text(m.get("content")) for m in msgs)
    return str(value)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multimodal-style parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def _check_number(value: Any, label: str, index: int) -> float | None:
    if value is None:
        return None  # TRL: "not applicable to this sample"
    if isinstance(value, numbers.Real) or hasattr(value, "item"):
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if math.isfinite(number):
            return number
    raise JobFailure(
        "reward_function_bad_output",
        f"reward {label!r} returned a non-numeric or non-finite value at index {index}: {value!r:.80}",
    )


class RewardRunner:
    """One uploaded reward, callable the way TRL calls reward functions."""

    def __init__(self, rf: RewardFunctionSpec, label: str, timeout: float, hyperparameters: dict):
        self.label = label
        self.format = rf.format
        self.weight = rf.weight
        self.path = Path(rf.path).resolve()
        self.timeout = timeout
        self.args = SimpleNamespace(**hyperparameters)
        self.calls = 0
        if not self.path.is_file():
            raise JobFailure("reward_function_error", f"reward {label!r}: file not found: {rf.path}")
        module = _load_module(self.path, label)
        self.fn = _pick_function(module, rf.format, label, self.path)
        try:
            params = inspect.signature(self.fn).parameters.values()
        except (TypeError, ValueError):
            params = []
        self._var_kw = any(p.kind is p.VAR_KEYWORD for p in params)
        self._named = {p.name for p in params}

    # TRL calls this with prompts=, completions=, completion_ids=, <columns>=, trainer_state=, ...
    def __call__(self, prompts, completions, **kwargs) -> list[float | None]:
        n = len(completions)
        prompts_text = [_text(p, prompt=True) for p in prompts]
        completions_text = [_text(c, prompt=False) for c in completions]
        columns = {k: v for k, v in kwargs.items() if k not in _TRL_EXTRAS}
        self.calls += 1
        if self.format == "miles":
            job = lambda: asyncio.run(self._miles_batch(prompts_text, completions_text, columns))  # noqa: E731
            limit = self.timeout * max(1, n)  # coroutines that block run one after another
        else:
            extras = {k: v for k, v in kwargs.items() if k in _TRL_EXTRAS and k in self._named}
            call_kwargs = {**columns, **extras}
            if not self._var_kw:
                call_kwargs = {k: v for k, v in call_kwargs.items() if k in self._named}
            job = lambda: self._call_trl(prompts_text, completions_text, call_kwargs)  # noqa: E731
            limit = self.timeout
        output = self._run_with_timeout(job, limit)
        if hasattr(output, "tolist"):  # numpy array / tensor
            output = output.tolist()
        if not isinstance(output, (list, tuple)):
            raise JobFailure(
                "reward_function_bad_output",
                f"reward {self.label!r} returned {type(output).__name__}, expected a list of {n} numbers",
            )
        if len(output) != n:
            raise JobFailure(
                "reward_function_bad_output",
                f"reward {self.label!r} returned {len(output)} values for {n} completions",
            )
        return [_check_number(v, self.label, i) for i, v in enumerate(output)]

    def _call_trl(self, prompts, completions, kwargs):
        result = self.fn(prompts=prompts, completions=completions, **kwargs)
        if inspect.isawaitable(result):
            result = asyncio.run(_await(result))
        return result

    async def _miles_batch(self, prompts, completions, columns) -> list:
        async def one(i: int):
            metadata = {k: v[i] for k, v in columns.items() if isinstance(v, list) and len(v) > i}
            sample = SimpleNamespace(
                index=i,
                prompt=prompts[i],
                response=completions[i],
                label=metadata.get("answer"),
                metadata=metadata,
            )
            result = self.fn(self.args, sample)
            if inspect.isawaitable(result):
                result = await asyncio.wait_for(_await(result), timeout=self.timeout)
            return result

        return list(await asyncio.gather(*(one(i) for i in range(len(completions)))))

    def _run_with_timeout(self, job: Callable[[], Any], limit: float) -> Any:
        future = _executor.submit(job)
        try:
            return future.result(timeout=limit)
        except (concurrent.futures.TimeoutError, asyncio.TimeoutError) as exc:
            raise JobFailure(
                "reward_function_timeout",
                f"reward {self.label!r} did not return within {self.timeout:g} s",
                hard_exit=True,
            ) from exc
        except JobFailure:
            raise
        except BaseException as exc:
            traceback.print_exception(exc, file=sys.stderr)
            raise JobFailure(
                "reward_function_error",
                f"reward {self.label!r} raised {type(exc).__name__}: {exc}{_where(exc, self.path)}",
            ) from exc


async def _await(awaitable):
    return await awaitable


def load_reward_functions(
    specs: list[RewardFunctionSpec], timeout: float, hyperparameters: dict
) -> list[Callable]:
    """Load every reward file and return TRL-ready callables named after the reward (``__name__``).

    TRL logs ``rewards/<__name__>/mean``, so the names are made unique and identifier-like.
    """
    funcs: list[Callable] = []
    used: set[str] = set()
    for i, rf in enumerate(specs):
        base = (rf.name or Path(rf.path).stem or f"reward_{i}").strip()
        label, k = base, 2
        while label in used:
            label, k = f"{base}_{k}", k + 1
        used.add(label)
        runner = RewardRunner(rf, label, timeout, hyperparameters)

        def reward_fn(prompts, completions, _runner=runner, **kwargs):
            return _runner(prompts, completions, **kwargs)

        reward_fn.__name__ = reward_fn.__qualname__ = label
        reward_fn.runner = runner  # type: ignore[attr-defined]
        funcs.append(reward_fn)
    return funcs
