"""Fixtures for running the official ``veri`` CLI (each version in its own venv) against a live server.

``run_veri(version, *args, env=..., cwd=..., key=..., timeout=...)`` runs ``veri`` from
``<repo>/.venv-veri-<version>/`` with ``VERI_API_URL=<server.url>`` (no ``/v1``: the SDK adds it),
``VERI_API_KEY=<key>`` (the server's bootstrap key unless ``key=`` is given), and ``HOME``,
``XDG_CONFIG_HOME`` and ``VERI_CONFIG_PATH`` inside the test's tmp dir, so nothing is read from or
written to the real user's config. An ``env`` value of ``None`` removes that variable (e.g.
``env={"VERI_API_KEY": None}`` to make the CLI use the profile saved by ``veri login``).

``veri_python(version, code, ...)`` runs a Python snippet with that venv's interpreter (the SDK is
not importable from the test process).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import veri_env  # noqa: E402  (this folder is not a package)

_installed: dict[str, dict] = {}
_lock = threading.Lock()


def ensure_veri(*versions: str) -> None:
    """Install (or reuse) the venvs for ``versions``, in parallel, once per test session."""
    with _lock:
        todo = [v for v in versions if v not in _installed]
        if not todo:
            return
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=len(todo)) as pool:
            futures = {v: pool.submit(veri_env.install, v) for v in todo}
        failures = []
        for v, fut in futures.items():
            try:
                _installed[v] = fut.result()
            except Exception as exc:  # noqa: BLE001 - reported below
                failures.append(f"veri-sdk {v}: {exc}")
        if failures:
            pytest.fail("could not prepare the veri CLI venvs:\n" + "\n".join(failures), pytrace=False)
        took = time.monotonic() - started
        report = ", ".join(
            f"{v}: " + ("reused" if _installed[v]["reused"] else f"installed in {_installed[v]['install_seconds']} s")
            for v in todo)
        print(f"\n[veri venvs] {report} (wall {took:.1f} s)")


@pytest.fixture(scope="session")
def veri_venvs() -> Callable[..., None]:
    """Call with the versions a test module needs; all known versions are installed together."""
    def need(*versions: str) -> None:
        ensure_veri(*(versions or tuple(veri_env.REQUIREMENTS)))
    return need


@pytest.fixture
def veri_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    return home


def _veri_env(home: Path, api_url: str | None, key: str | None, extra: dict | None) -> dict[str, str]:
    env = veri_env.base_env(home)
    if api_url is not None:
        env["VERI_API_URL"] = api_url
    if key is not None:
        env["VERI_API_KEY"] = key
    for name, value in (extra or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


@pytest.fixture
def run_veri(server, veri_venvs, veri_home) -> Callable[..., subprocess.CompletedProcess]:
    veri_venvs()

    def run(version: str, *args: str, env: dict | None = None, cwd: Path | str | None = None,
            key: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        return veri_env.run_veri(version, *args, env=_veri_env(veri_home, server.url, key or server.key, env),
                                 cwd=cwd or veri_home, timeout=timeout)

    return run


@pytest.fixture
def veri_python(server, veri_venvs, veri_home) -> Callable[..., subprocess.CompletedProcess]:
    veri_venvs()

    def run(version: str, code: str, *, env: dict | None = None, key: str | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([str(veri_env.python_bin(version)), "-c", code], capture_output=True, text=True,
                              env=_veri_env(veri_home, server.url, key or server.key, env), cwd=veri_home,
                              timeout=timeout)

    return run
