"""``synth-ai==0.2.6`` in its own virtual environment, ``<repo>/.venv-synth-0.2.6/``.

synth-ai pins a large dependency tree (modal, crafter, transformers, google-genai, …) that has no
business in tuneyard's own venv, so the tests drive it from a venv of its own, built once with
``python -m venv`` + pip and reused while its marker file says the install finished with the same
requirements. A file lock makes concurrent test runs wait for one installer.

Run this module directly to (re)build it: ``.venv/bin/python tests/synth/synth_env.py [--force]``.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
import venv
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VERSION = "0.2.6"
REQUIREMENTS = [f"synth-ai=={VERSION}"]
PIP_FLAGS = ["--disable-pip-version-check", "--no-input"]
MARKER = ".tuneyard-synth-installed.json"
INSTALL_TIMEOUT_S = 1500


def venv_dir() -> Path:
    return REPO / f".venv-synth-{VERSION}"


def bin_path(name: str) -> Path:
    return venv_dir() / "bin" / name


def _marker_ok() -> bool:
    try:
        data = json.loads((venv_dir() / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return data.get("requirements") == REQUIREMENTS and bin_path("python").exists() and bin_path("synth-ai").exists()


def _works(full: bool = True) -> bool:
    """The installed version answers; ``full`` also imports the modules the tests drive (slow: ~10 s+)."""
    probe = "import importlib.metadata as m; print(m.version('synth-ai'))"
    if full:
        probe = "import sys; sys.modules['openai_harmony'] = None; import synth_ai.lm, synth_ai.cli.balance; " + probe
    try:
        out = subprocess.run([str(bin_path("python")), "-c", probe], capture_output=True, text=True, timeout=300,
                             check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and out.stdout.strip().endswith(VERSION)


@contextmanager
def _install_lock():
    lock_dir = REPO / ".venv-synth-locks"  # matches the ignored pattern .venv-*/
    lock_dir.mkdir(exist_ok=True)
    with open(lock_dir / f"{VERSION}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def install(*, force: bool = False) -> dict:
    """Build the venv unless a complete one is there; returns its marker data (+ ``reused``)."""
    with _install_lock():
        target = venv_dir()
        if not force and _marker_ok() and _works(full=False):
            return {**json.loads((target / MARKER).read_text()), "reused": True}
        if target.exists():
            shutil.rmtree(target)
        started = time.monotonic()
        venv.EnvBuilder(with_pip=True, clear=True).create(target)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PIP_USER")}
        proc = subprocess.run([str(bin_path("python")), "-m", "pip", "install", *PIP_FLAGS, *REQUIREMENTS],
                              capture_output=True, text=True, env=env, timeout=INSTALL_TIMEOUT_S, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"installing synth-ai {VERSION} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        if not _works():
            raise RuntimeError(f"synth-ai {VERSION} installed but does not import")
        data = {"version": VERSION, "requirements": REQUIREMENTS,
                "install_seconds": round(time.monotonic() - started, 1),
                "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        (target / MARKER).write_text(json.dumps(data, indent=2))  # last: its presence means done
        return {**data, "reused": False}


# Variables of the caller's environment that would point the SDK at a real account or another venv.
_SCRUB_PREFIXES = ("SYNTH_", "MODAL_", "OPENAI_", "BACKEND_", "DEFAULT_DEV_API_KEY", "VIRTUAL_ENV", "PYTHONPATH",
                   "PYTHONHOME")


def base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB_PREFIXES)}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_CACHE_HOME=str(home / ".cache"),
               NO_COLOR="1", TERM="dumb", COLUMNS="250", PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8",
               USE_ZYK_CACHE="false", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env


if __name__ == "__main__":
    info = install(force="--force" in sys.argv)
    state = "reused" if info["reused"] else "installed"
    print(f"synth-ai {VERSION}: {state}; install took {info['install_seconds']} s")
