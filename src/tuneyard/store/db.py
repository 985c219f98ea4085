"""Engine and sessions for SQLite (WAL, the default) or Postgres, and migrations on start."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
MIGRATE_LOCK = 741_101  # advisory-lock key serializing migrations (and first-start bootstrap) on Postgres


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            # WAL lets readers (log streams) run beside the writer; foreign keys are off by default.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()
            # Let SQLAlchemy emit BEGIN so that BEGIN IMMEDIATE can take the write lock up front.
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # pragma: no cover - trivial
            # Write units of work take the write lock up front (BEGIN IMMEDIATE), so read-then-write
            # sequences (claiming a job, charging credit) cannot interleave between processes and
            # never fail half-way with "database is locked". Readers use a plain deferred BEGIN.
            if conn.get_execution_options().get("readonly"):
                conn.exec_driver_sql("BEGIN")
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (``tuneyard serve`` calls this on start)."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Replicas and workers starting together: one migrates, the others wait and find it done.
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATE_LOCK})")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")


def after_commit(session: Session, action) -> None:
    """Run ``action()`` once the session's transaction has committed (e.g. deleting a blob whose
    row is gone), so a failed commit never leaves a row without its file."""
    session.info.setdefault("after_commit", []).append(action)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    for action in session.info.pop("after_commit", []):
        action()


@event.listens_for(Session, "after_rollback")
def _drop_after_commit(session: Session) -> None:
    session.info.pop("after_commit", None)


class Database:
    """One engine and its session factory; ``session()`` is a unit of work that commits or rolls back."""

    def __init__(self, url: str, *, info: dict | None = None):
        self.url = url
        self.engine = make_engine(url)
        # ``info`` is copied into every session's ``Session.info`` (the process settings, for services).
        self._factory = sessionmaker(self.engine, expire_on_commit=False, info=dict(info or {}))

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def session(self, *, readonly: bool = False) -> Iterator[Session]:
        """A unit of work. ``readonly=True`` lets SQLite readers run beside a writer (log streams)."""
        with self._factory() as s:
            if readonly:
                s.connection(execution_options={"readonly": True})
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    def migrate(self) -> None:
        migrate(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()
