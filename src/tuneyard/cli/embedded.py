"""A ``tuneyard serve`` subprocess for the quickstart: a free port, a data dir, the key it bootstrapped."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from tuneyard.client import Client, errors


def default_data_dir() -> Path:
    env = os.environ.get("TUNEYARD_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".local" / "share" / "tuneyard"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedServer:
    def __init__(self, data_dir: Path, port: int | None = None):
        self.data_dir = data_dir.expanduser().resolve()
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.data_dir / "quickstart-server.log"
        self.key_file = self.data_dir / "bootstrap_api_key"
        self.proc: subprocess.Popen | None = None
        self.api_key: str | None = None

    def start(self, timeout: float = 180) -> EmbeddedServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "TUNEYARD_DATA_DIR": str(self.data_dir)}
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tuneyard", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        with Client(self.url, max_retries=0, timeout=5) as probe:
            while True:
                if self.proc.poll() is not None:
                    raise errors.TuneyardError(f"the embedded server exited (code {self.proc.returncode}):\n"
                                               f"{self.log_tail()}")
                try:
                    probe.health()
                    break
                except errors.TuneyardError:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise errors.TuneyardError(f"the embedded server did not come up in {timeout:.0f}s; "
                                                   f"see {self.log_path}") from None
                    time.sleep(0.3)
        self.api_key = self._key()
        return self

    def _key(self) -> str:
        """The key the first start saved; on a data dir whose key file is gone, a new admin key."""
        if self.key_file.exists():
            return self.key_file.read_text().strip()
        from tuneyard.context import Context
        from tuneyard.services import orgs
        from tuneyard.settings import Settings

        ctx = Context.from_settings(Settings(data_dir=self.data_dir))
        try:
            with ctx.db.session() as session:
                org = orgs.get_org(session, "default")
                _, plaintext = orgs.create_key(session, org.id, "quickstart")
        finally:
            ctx.db.dispose()
        return plaintext

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait(self) -> None:
        if self.proc is not None:
            self.proc.wait()

    def stop(self, timeout: float = 30) -> None:
        if not self.running():
            return
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
