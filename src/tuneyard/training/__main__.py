"""Entry point: ``python -m tuneyard.training SPEC.json [--workdir DIR]``.

``--workdir`` is where inputs given as URLs are fetched to and a relative ``output_dir`` goes
(default: the spec's folder); see staging.py.

Contract with the scheduler / executors:

* stdout carries only JSON lines (``status`` / ``metrics`` / ``log`` / ``checkpoint``); everything
  else (warnings, tracebacks, library prints) goes to stderr.
* exactly one terminal ``{"type":"status","status":"completed"|"failed"|"cancelled",...}`` line.
* exit code 0 = completed or cancelled, 1 = failed, 130 = forced stop by a second signal.
* cancel = SIGTERM (or SIGINT): the run stops after the current optimizer step, saves a checkpoint,
  reports ``cancelled`` and exits 0. A second signal exits at once.

We always leave through ``os._exit`` after flushing: a reward function stuck in a worker thread
(or any stray non-daemon thread) must not keep a finished job's process alive.
"""

from __future__ import annotations

import os

# Before anything imports huggingface_hub / transformers: never reach for the network, keep the
# tokenizers library from forking threads, keep library chatter quiet.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import signal  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

from . import staging  # noqa: E402
from .events import CancelState, Emitter, JobFailure  # noqa: E402
from .spec import SpecError, load_spec  # noqa: E402

EXIT_OK, EXIT_FAILED, EXIT_FORCED = 0, 1, 130
USAGE = "usage: python -m tuneyard.training SPEC.json [--workdir DIR]"


def _find_failure(exc: BaseException) -> JobFailure | None:
    """A JobFailure raised deep inside a trainer may come back wrapped; look down the chain."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, JobFailure):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _install_signal_handlers(emitter: Emitter, cancel: CancelState, ctx) -> None:
    def handler(signum, frame):
        name = signal.Signals(signum).name
        if not cancel.requested:
            cancel.requested = True
            cancel.signal_name = name
            return
        step = ctx.step if ctx is not None else None
        emitter.terminal(
            "cancelled",
            final_step=step,
            error={"code": "cancelled_forcefully", "message": f"second {name}: stopped without a final checkpoint"},
        )
        _exit(EXIT_FORCED)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _exit(code: int) -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stderr__):
        try:
            stream.flush()
        except Exception:  # a closed pipe must not change the exit code
            pass
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    emitter = Emitter.take_stdout()
    cancel = CancelState()
    from .runner import RunContext  # noqa: PLC0415 - torch-heavy; after stdout is secured

    ctx = RunContext()
    _install_signal_handlers(emitter, cancel, ctx)
    workdir = None
    if len(argv) == 3 and argv[1] == "--workdir":
        argv, workdir = argv[:1], Path(argv[2])
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr)
        emitter.terminal("failed", final_step=None, error={"code": "invalid_spec", "message": USAGE})
        return EXIT_FAILED
    try:
        spec = load_spec(argv[0])
        # Inputs given as blob URLs are fetched into the work folder (default: the spec's folder).
        staging.localize(spec, workdir or Path(argv[0]).resolve().parent)
    except SpecError as exc:
        emitter.terminal("failed", final_step=None, error={"code": "invalid_spec", "message": str(exc)})
        return EXIT_FAILED
    except Exception as exc:  # an input that cannot be fetched fails the job with the reason
        emitter.terminal("failed", final_step=None,
                         error={"code": "input_unavailable", "message": f"could not fetch the job's inputs: {exc}"})
        return EXIT_FAILED
    if spec.output_url:
        emitter.on_checkpoint = staging.uploader(spec.output_url)
    emitter.log(f"job {spec.job_id}: {spec.method.upper()} on {spec.base_model}")

    from .runner import run  # noqa: PLC0415

    try:
        status = run(spec, emitter, cancel, ctx)
    except BaseException as exc:  # the one place every failure becomes a status line
        failure = _find_failure(exc)
        if failure is None:
            traceback.print_exc(file=sys.stderr)
            error = {"code": "training_error", "message": f"{type(exc).__name__}: {exc}"}
        else:
            error = {"code": failure.code, "message": failure.message}
        if isinstance(exc, KeyboardInterrupt):
            emitter.terminal("cancelled", final_step=ctx.step, error=error)
            return EXIT_FORCED
        emitter.terminal("failed", final_step=ctx.step, error=error)
        return EXIT_FAILED
    emitter.terminal(status, final_step=ctx.step, error=None)
    return EXIT_OK


if __name__ == "__main__":
    _exit(main())
