"""The official ``veri`` CLI/SDK, each version in its own virtual environment.

Different versions of the same package are needed side by side (0.2.10 still has ``rewards``,
0.2.44+ has ``api-keys``), so each lives in ``<repo>/.venv-veri-<version>/`` (ignored by git via
``.venv-*/``). A venv is built once with ``python -m venv`` + pip and reused while its marker file
says it was installed completely with the same requirements; a half-built one is rebuilt. A file
lock makes concurrent test runs (several engineers, or xdist workers) wait for one installer.

Run this module directly to (re)build the venvs and print how long each install took:
``.venv/bin/python tests/compat/veri_env.py [--force] [VERSION ...]``.
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

# Version -> pip requirement lines. 0.2.10 declares only ``typer>=0.12``, which today resolves to a
# typer that no longer pulls in click, so both are pinned (sdk-contracts A.2, install gotcha 1).
REQUIREMENTS: dict[str, list[str]] = {
    "0.2.10": ["veri-sdk==0.2.10", "typer>=0.12,<0.26", "click>=8,<9"],
    "0.2.33": ["veri-sdk==0.2.33"],
    "0.2.45": ["veri-sdk==0.2.45"],
}
# --no-compile: ``veri init`` copies the template folder verbatim, .pyc files included, and then
# crashes decoding them (install gotcha 2). Harmless for the other commands.
PIP_FLAGS = ["--no-compile", "--disable-pip-version-check", "--no-input"]
MARKER = ".tuneyard-veri-installed.json"
INSTALL_TIMEOUT_S = 900


def venv_dir(version: str) -> Path:
    return REPO / f".venv-veri-{version}"


def _bin(version: str, name: str) -> Path:
    return venv_dir(version) / "bin" / name


def _marker_ok(version: str) -> bool:
    marker = venv_dir(version) / MARKER
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return (data.get("requirements") == REQUIREMENTS[version] and _bin(version, "veri").exists()
            and _bin(version, "python").exists())


def _works(version: str) -> bool:
    """The CLI entry point imports and the installed SDK is the wanted version."""
    probe = ("import importlib.metadata as m, veri_sdk.cli.main; "
             "print(m.version('veri-sdk'))")
    try:
        out = subprocess.run([str(_bin(version, "python")), "-c", probe], capture_output=True, text=True,
                             timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and out.stdout.strip() == version


@contextmanager
def _install_lock(version: str):
    lock_dir = REPO / ".venv-veri-locks"  # matches the ignored pattern .venv-*/
    lock_dir.mkdir(exist_ok=True)
    with open(lock_dir / f"{version}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def install(version: str, *, force: bool = False) -> dict:
    """Build the venv for ``version`` unless a complete one is there; returns its marker data.

    The marker records ``install_seconds`` (the time of the last real install) and whether this
    call reused the venv (``reused``).
    """
    if version not in REQUIREMENTS:
        raise ValueError(f"unknown veri version {version!r}; known: {', '.join(REQUIREMENTS)}")
    with _install_lock(version):
        target = venv_dir(version)
        if not force and _marker_ok(version) and _works(version):
            data = json.loads((target / MARKER).read_text())
            return {**data, "reused": True}
        if target.exists():
            shutil.rmtree(target)
        started = time.monotonic()
        venv.EnvBuilder(with_pip=True, clear=True).create(target)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PIP_USER")}
        proc = subprocess.run([str(_bin(version, "python")), "-m", "pip", "install", *PIP_FLAGS,
                               *REQUIREMENTS[version]], capture_output=True, text=True, env=env,
                              timeout=INSTALL_TIMEOUT_S)
        if proc.returncode != 0:
            raise RuntimeError(f"installing veri-sdk {version} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        if not _works(version):
            raise RuntimeError(f"veri-sdk {version} installed but its CLI does not import")
        data = {"version": version, "requirements": REQUIREMENTS[version],
                "install_seconds": round(time.monotonic() - started, 1),
                "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        # Written last: its presence means the install finished.
        (target / MARKER).write_text(json.dumps(data, indent=2))
        return {**data, "reused": False}


def veri_bin(version: str) -> Path:
    return _bin(version, "veri")


def python_bin(version: str) -> Path:
    return _bin(version, "python")


# Variables of the caller's environment that would leak a real account, config or venv into a run.
_SCRUB_PREFIXES = ("VERI_", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "XDG_")


def base_env(home: Path) -> dict[str, str]:
    """A clean environment for the CLI: no VERI_* from outside, HOME and the config inside ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB_PREFIXES)}
    config_home = home / ".config"
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(config_home),
               VERI_CONFIG_PATH=str(config_home / "veri" / "config.toml"),
               # Rich output that tests can read: no colour codes, no wrapping of ids and paths.
               NO_COLOR="1", TERM="dumb", COLUMNS="250", PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8")
    return env


def run_veri(version: str, *args: str, env: dict[str, str], cwd: Path | str | None = None,
             timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``veri ARGS`` of ``version`` with exactly ``env``; never raises on a non-zero exit."""
    return subprocess.run([str(veri_bin(version)), *args], capture_output=True, text=True, env=env,
                          cwd=str(cwd) if cwd else None, timeout=timeout, stdin=subprocess.DEVNULL)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--force"]
    for v in args or list(REQUIREMENTS):
        info = install(v, force="--force" in sys.argv)
        state = "reused" if info["reused"] else "installed"
        print(f"veri-sdk {v}: {state}; install took {info['install_seconds']} s")
