"""Shared fixtures: a real tuneyard server (uvicorn on a loopback port) on SQLite and on Postgres.

Postgres tests need the server at 127.0.0.1:5432 (trust auth, database ``test``); each test
session creates its own database there and drops it at the end, so nothing is left behind.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tuneyard.api.app import create_app  # noqa: E402
from tuneyard.context import Context  # noqa: E402
from tuneyard.server import prepare  # noqa: E402
from tuneyard.services import orgs  # noqa: E402
from tuneyard.settings import Settings  # noqa: E402

PG_ADMIN_URL = os.environ.get("TUNEYARD_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BOOTSTRAP_KEY = "vk_test_bootstrap_key_0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh Postgres database for this test session, dropped afterwards."""
    yield from fresh_postgres_database("tuneyard_test")


def fresh_postgres_database(prefix: str) -> Iterator[str]:
    """Create an empty database on the local Postgres, yield its URL, drop it (for fixtures)."""
    import sqlalchemy as sa

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"Postgres at {PG_ADMIN_URL} is required for these tests: {exc}")
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@dataclass
class LiveServer:
    url: str
    ctx: Context
    key: str  # the bootstrap key of the default organization

    def client(self, key: str | None = None, **kw) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key or self.key}"} if (key or self.key) else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kw)

    def new_org(self, name: str | None = None) -> tuple[str, str]:
        """A fresh organization and its key: (org_id, plaintext key)."""
        with self.ctx.db.session() as s:
            org = orgs.create_org(s, name or f"org-{uuid.uuid4().hex[:8]}",
                                  initial_credit_usd=self.ctx.settings.initial_credit_usd)
            _, key = orgs.create_key(s, org.id, "test")
            return org.id, key


def start_server(settings: Settings) -> tuple[uvicorn.Server, threading.Thread, LiveServer]:
    ctx = Context.from_settings(settings)
    prepare(ctx)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(ctx), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("tuneyard test server did not start")
        time.sleep(0.05)
    return server, thread, LiveServer(f"http://127.0.0.1:{port}", ctx, settings.bootstrap_key or "")


def stop_server(server: uvicorn.Server, thread: threading.Thread, live: LiveServer) -> None:
    """Stop the server, and the deployment workers it started (they would outlive it by design)."""
    from tests.deploy_helpers import kill_workers

    server.should_exit = True
    thread.join(timeout=10)
    live.ctx.db.dispose()
    kill_workers(str(live.ctx.settings.data_dir))


def make_settings(data_dir: Path, database_url: str = "", **kw) -> Settings:
    return Settings(data_dir=data_dir, database_url=database_url, bootstrap_key=BOOTSTRAP_KEY, **kw)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request, tmp_path_factory) -> Iterator[LiveServer]:
    """A live server per test module, once on SQLite and once on Postgres."""
    data_dir = tmp_path_factory.mktemp(f"data-{request.param}")
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else ""
    if url:
        _reset_postgres(url)
    # No scheduler here: these modules test the API and storage, not training runs.
    # A module may set SERVER_SETTINGS = {...} to change other settings of its server.
    srv, thread, live = start_server(make_settings(data_dir, url, **{
        "max_upload_bytes": 2 * 1024 * 1024, "embedded_worker": False,
        **getattr(request.module, "SERVER_SETTINGS", {})}))
    yield live
    stop_server(srv, thread, live)


@pytest.fixture(scope="module")
def sqlite_server(request, tmp_path_factory) -> Iterator[LiveServer]:
    """A live server on SQLite with its scheduler running: jobs really train (SERVER_SETTINGS applies)."""
    srv, thread, live = start_server(make_settings(tmp_path_factory.mktemp("data"),
                                                   **getattr(request.module, "SERVER_SETTINGS", {})))
    yield live
    stop_server(srv, thread, live)


def _reset_postgres(url: str) -> None:
    """Each module gets an empty schema, so the bootstrap org is created afresh."""
    import sqlalchemy as sa

    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture
def api(server: LiveServer) -> Iterator[httpx.Client]:
    """A client authenticated as a fresh organization (so tests do not see each other's rows)."""
    _, key = server.new_org()
    with server.client(key) as c:
        yield c


class ServeProcess:
    """``tuneyard serve`` as a real subprocess (for restart and CLI tests)."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None, port: int | None = None):
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "TUNEYARD_DATA_DIR": str(data_dir), "TUNEYARD_BOOTSTRAP_KEY": BOOTSTRAP_KEY,
                    **(env or {})}
        self.proc = None
        self.key = BOOTSTRAP_KEY

    def start(self, timeout: float = 60) -> "ServeProcess":
        import subprocess
        import sys

        log = open(self.data_dir / f"serve-{self.port}.log", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "tuneyard", "serve", "--port", str(self.port)],
                                     env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tuneyard serve exited: {(self.data_dir / f'serve-{self.port}.log').read_text()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("tuneyard serve did not become healthy")

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks run, as when a machine or process dies."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except Exception:
                self.proc.kill()

    def client(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {key or self.key}"}, timeout=60)
