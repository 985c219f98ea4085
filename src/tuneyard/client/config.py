"""Where the client finds its server and key.

Order: explicit arguments, then ``TUNEYARD_URL`` / ``TUNEYARD_API_KEY``, then the config file that
``tuneyard login`` writes, then ``http://127.0.0.1:8000`` with no key. The file is
``$TUNEYARD_CONFIG`` or ``$XDG_CONFIG_HOME/tuneyard/config.json`` (``~/.config/tuneyard/config.json``),
JSON ``{"url": ..., "api_key": ...}``, written with mode 0600.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8000"
ENV_URL = "TUNEYARD_URL"
ENV_KEY = "TUNEYARD_API_KEY"
ENV_CONFIG = "TUNEYARD_CONFIG"


def config_path() -> Path:
    explicit = os.environ.get(ENV_CONFIG)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "tuneyard" / "config.json"


@dataclass
class ClientConfig:
    url: str = DEFAULT_URL
    api_key: str | None = None
    # Where each value came from: "argument", "env", "file" or "default" (shown by `tuneyard whoami`).
    url_source: str = "default"
    key_source: str = "default"


def read_file(path: Path | None = None) -> dict:
    path = path or config_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the tuneyard config {path}: {exc}") from None
    return data if isinstance(data, dict) else {}


def write_file(url: str, api_key: str, path: Path | None = None) -> Path:
    """Save the login atomically, readable by the owner only."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".config-", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"url": url, "api_key": api_key}, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def remove_file(path: Path | None = None) -> bool:
    path = path or config_path()
    if path.exists():
        path.unlink()
        return True
    return False


def has_login() -> bool:
    """True when a server was chosen by the environment or a saved login (not just the default)."""
    return bool(os.environ.get(ENV_URL) or os.environ.get(ENV_KEY) or read_file())


def resolve(url: str | None = None, api_key: str | None = None) -> ClientConfig:
    cfg = ClientConfig()
    saved = read_file()
    for value, source in ((url, "argument"), (os.environ.get(ENV_URL), "env"), (saved.get("url"), "file")):
        if value:
            cfg.url, cfg.url_source = value, source
            break
    for value, source in ((api_key, "argument"), (os.environ.get(ENV_KEY), "env"), (saved.get("api_key"), "file")):
        if value:
            cfg.api_key, cfg.key_source = value, source
            break
    cfg.url = normalize_url(cfg.url)
    return cfg


def normalize_url(url: str) -> str:
    """Accept ``host:port`` and a trailing ``/v1``: the client adds ``/v1/...`` itself."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    if url.endswith("/v1"):
        url = url[: -len("/v1")]
    return url
