"""Engines, transactions and migrations for SQLite and PostgreSQL.

SQLite: WAL journal, a busy timeout, foreign keys on, and ``BEGIN IMMEDIATE`` for every
write transaction so two writers never deadlock on a lock upgrade (reads use a plain
``BEGIN``). The WAL is checkpointed by ``Database.write`` after a writer has let go of the
write lock, never inside a commit (see ``_Checkpointer``). PostgreSQL: READ COMMITTED with
row claims through ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from feedbot.errors import StoreError
from feedbot.store.dialect import POPCOUNT_FUNCTION

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 30_000
# The WAL is checkpointed once it holds this much (SQLite's own default is 1,000 pages,
# about 4 MiB), and cut back to WAL_KEEP_BYTES when it starts over.
CHECKPOINT_BYTES = 4 * 1024 * 1024
WAL_KEEP_BYTES = CHECKPOINT_BYTES // 2


def mask_db_url(url: str) -> str:
    """The URL with any password hidden, for logs and errors."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split(":", 1)[0] + "://…"


def _sqlite_setup(engine: Engine, cache_kib: int | None) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if cache_kib is not None:
            cur.execute(f"PRAGMA cache_size = -{int(cache_kib)}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA wal_autocheckpoint = 0")  # Database.write checkpoints instead
        cur.execute(f"PRAGMA journal_size_limit = {WAL_KEEP_BYTES}")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()
        dbapi_conn.create_function(POPCOUNT_FUNCTION, 1, int.bit_count, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        readonly = conn.get_execution_options().get("feedbot_readonly", False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


def make_engine(url: str, *, cache_kib: int | None = None) -> Engine:
    """Create an engine; for SQLite files, the parent folder is created, and *cache_kib*
    sets each connection's page cache (SQLite's default is 2 MiB)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if db and db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
        # writes take turns on one lock, so a few connections suffice; the most recently
        # used one is handed out first, so one page cache stays warm instead of several
        # half-filled ones (each may hold 2 MiB)
        engine = create_engine(
            url,
            connect_args={"timeout": BUSY_TIMEOUT_MS / 1000},
            pool_size=4,
            max_overflow=12,
            pool_use_lifo=True,
        )
        _sqlite_setup(engine, cache_kib)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(parsed, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _alembic_config() -> AlembicConfig:
    # alembic (with mako and pygments) is imported only to migrate: worker processes and
    # most commands never do, and start about 60 ms sooner without it
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(resources.files("feedbot.store") / "migrations"))
    return cfg


def migrate(engine: Engine) -> None:
    """Apply every pending Alembic migration (idempotent)."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    cfg = _alembic_config()
    head = ScriptDirectory.from_config(cfg).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current == head:
        return
    log.info("migrating store from %s to %s", current or "empty", head)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


class _WriterQueue:
    """Writers of one SQLite file take turns: first within this process (a thread lock),
    then across processes (``flock`` on ``<database>.writer``), then ``BEGIN IMMEDIATE``.

    SQLite admits one writer anyway, but a writer that finds the database locked sleeps
    in its busy handler (1, 2, 5, 10 … ms) and retries, so with several threads or
    processes wanting to write the lock sat free between turns and a slow writer could
    run out of busy timeout. A blocked ``flock`` wakes as soon as the lock is released.
    """

    def __init__(self, database: str | None) -> None:
        self._threads = threading.Lock()
        self._path = None if not database or database == ":memory:" else f"{database}.writer"
        self._fd: int | None = None

    @contextmanager
    def turn(self) -> Iterator[None]:
        with self._threads:
            fd = self._file()
            if fd is None:
                yield
                return
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _file(self) -> int | None:
        if self._path is None:
            return None
        if self._fd is None:
            try:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:  # a read-only folder: the busy handler still works
                log.warning("no writer queue across processes (%s): %s", self._path, exc)
                self._path = None
                return None
        return self._fd

    def close(self) -> None:
        with self._threads:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


class _Checkpointer:
    """Checkpoints a SQLite WAL after a write transaction, outside the write lock.

    SQLite's automatic checkpoint runs inside the ``COMMIT`` that crosses its threshold:
    copying the WAL into the database and syncing both, while that writer still holds
    the write lock and every other writer waits. With ``wal_autocheckpoint`` off, the
    writer that finds the WAL over ``CHECKPOINT_BYTES`` starts a PASSIVE checkpoint on a
    thread of its own once it has let go of the lock: the checkpoint blocks no reader
    or writer, and its disk syncs overlap with the caller's next work. The WAL file is
    only measured: ``journal_size_limit`` cuts it back to ``WAL_KEEP_BYTES`` when a
    writer starts it over, so its size tells how much was written since.
    """

    def __init__(self, engine: Engine, database: str | None) -> None:
        self._engine = engine
        self._wal = None if not database or database == ":memory:" else f"{database}-wal"
        self._lock = threading.Lock()
        self._running: threading.Thread | None = None

    def after_write(self) -> None:
        if self._wal is None:
            return
        try:
            if os.path.getsize(self._wal) < CHECKPOINT_BYTES:
                return
        except OSError:
            return
        with self._lock:
            if self._running is not None and self._running.is_alive():
                return  # one at a time; the next writer looks again
            self._running = threading.Thread(
                target=self._checkpoint, name="wal-checkpoint", daemon=True
            )
            self._running.start()

    def _checkpoint(self) -> None:
        try:
            raw = self._engine.raw_connection()  # no BEGIN: SQLAlchemy would open one
            try:
                cur = raw.cursor()
                cur.execute("PRAGMA wal_checkpoint(PASSIVE)")
                cur.close()
            finally:
                raw.close()
        except Exception as exc:  # the next writer tries again
            log.warning("WAL checkpoint of %s failed: %s", self._wal, exc)

    def wait(self) -> None:
        """Until the checkpoint that runs (if one does) has ended."""
        with self._lock:
            running = self._running
        if running is not None:
            running.join()


class Database:
    """Owns the engine; hands out read and write transactions."""

    def __init__(
        self, url: str, *, apply_migrations: bool = True, cache_kib: int | None = None
    ) -> None:
        self.url = url
        self.display_url = mask_db_url(url)
        self._writer: _WriterQueue | None = None
        self._checkpoints: _Checkpointer | None = None
        try:
            self.engine = make_engine(url, cache_kib=cache_kib)
            if self.engine.dialect.name == "sqlite":
                database = make_url(url).database
                self._writer = _WriterQueue(database)
                self._checkpoints = _Checkpointer(self.engine, database)
            if apply_migrations:
                migrate(self.engine)
        except SQLAlchemyError as exc:
            raise StoreError(
                f"cannot open the store: {exc.__class__.__name__}: {exc.args[0] if exc.args else exc}",
                resource=self.display_url,
            ) from exc

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite); commits on success.

        On SQLite, writers queue first (see ``_WriterQueue``), and the WAL is checkpointed
        once the write lock is free again (see ``_Checkpointer``).
        """
        if self._writer is None or self._checkpoints is None:
            with self.engine.begin() as conn:
                yield conn
            return
        with self._writer.turn(), self.engine.begin() as conn:
            yield conn
        self._checkpoints.after_write()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction; never takes the SQLite write lock."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(feedbot_readonly=True)
            with conn.begin():
                yield conn

    def close(self) -> None:
        if self._checkpoints is not None:
            self._checkpoints.wait()
        self.engine.dispose()
        if self._writer is not None:
            self._writer.close()
