"""``feedbot run``: one long-lived process that schedules every job and serves the web side.

An APScheduler 3 ``BackgroundScheduler`` with an in-memory job store fires short ticks
(coalesced, one instance each, so a slow tick never piles up). Each tick claims its work
from the store, so the schedule itself holds no state worth persisting: a restart simply
starts ticking again.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from feedbot import metrics
from feedbot.app import App
from feedbot.config import Config, load_config
from feedbot.errors import ConfigError, DaemonError, FeedbotError
from feedbot.publish.websub import HubPinger
from feedbot.store import articles as store_articles
from feedbot.store import housekeeping

log = logging.getLogger(__name__)

WSGIApp = Callable[..., Any]


class StateLock:
    """One daemon per state directory: an exclusive ``flock`` on ``state/feedbot.lock``."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "feedbot.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            other = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise DaemonError(
                    f"another feedbot is already running on this state directory (pid {other})",
                    resource=str(self.path.parent),
                ) from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _start_workers(app: App) -> None:
    """Start the poll's worker processes in the background, so that the first tick finds
    them ready (news feeds are large enough to be processed in them); not without
    upstreams, which would leave them idle."""
    if app.config.upstream:
        threading.Thread(target=app.poller.start, name="start-workers", daemon=True).start()


class Daemon:
    """Owns the running App (swapped on SIGHUP), the scheduler and the web server."""

    def __init__(self, config: Config, config_path: Path) -> None:
        self.config_path = config_path
        self.app = App(config)
        self.lock = StateLock(config.state_dir)
        self.stop = threading.Event()
        self.reload_requested = threading.Event()
        self.heartbeat: datetime | None = None
        self._fingerprint: tuple[Any, ...] | None = None
        self._last_publish = 0.0
        self._apps_lock = threading.Lock()
        self._in_use: dict[int, int] = {}
        self._retired: list[App] = []
        self.pinger = self._pinger(config)
        self.scheduler = BackgroundScheduler(
            jobstores={"default": MemoryJobStore()},
            executors={"default": ThreadPoolExecutor(4)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60},
            timezone=UTC,
        )
        self._web: WSGIApp | None = None
        self.server: Any = None

    # ------------------------------------------------------------- lifecycle
    def run(self) -> int:
        self.lock.acquire()
        try:
            self._install_signals()
            self._start()
            while not self.stop.wait(0.5):
                if self.reload_requested.is_set():
                    self.reload_requested.clear()
                    self.reload()
            return self._shutdown()
        finally:
            self.lock.release()

    def _start(self) -> None:
        app = self.app
        app.sync_upstreams()
        if app.config.import_paths:
            try:
                app.import_paths(app.config.import_paths)
            except FeedbotError as exc:
                log.error("import at start failed, continuing without it: %s", exc)
        self.publish_tick(force=True)
        self._start_web(app.config)
        _start_workers(app)
        d = app.config.daemon
        jobs: list[tuple[Callable[[], object], timedelta, str]] = [
            (self.poll_tick, d.poll_tick, "poll"),
            (self.deliver_tick, d.deliver_tick, "deliver"),
            (self.publish_tick, d.publish_tick, "publish"),
            (self.housekeeping_tick, d.housekeeping_every, "housekeeping"),
        ]
        for fn, every, name in jobs:
            self.scheduler.add_job(fn, "interval", seconds=every.total_seconds(), id=name, name=name,
                                   next_run_time=datetime.now(UTC))  # fmt: skip
        self.scheduler.start()
        log.info(
            "feedbot running: %d upstreams, %d webhooks, serving http://%s:%d/",
            len(app.config.upstream), len(app.config.webhook), app.config.server.host, self.server.port,
        )  # fmt: skip

    def _start_web(self, config: Config) -> None:
        from feedbot.web.server import serve

        self._web = self._build_web(self.app)
        self.server = serve(self._dispatch, host=config.server.host, port=config.server.port,
                            threads=config.server.threads)  # fmt: skip
        threading.Thread(target=self.server.run, name="web", daemon=True).start()

    def _build_web(self, app: App) -> WSGIApp:
        from feedbot.web.app import make_web_app

        return make_web_app(app.db, app.config, heartbeat=lambda: self.heartbeat,
                            registry=metrics.REGISTRY, clock=app.clock)  # fmt: skip

    def _dispatch(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        web = self._web
        assert web is not None
        return web(environ, start_response)

    def _shutdown(self) -> int:
        grace = self.app.config.daemon.grace.total_seconds()
        log.info("stopping: finishing in-flight work (grace %.0f s)", grace)
        self.app.poller.stop.set()
        done = threading.Event()

        def stop_scheduler() -> None:
            self.scheduler.shutdown(wait=True)
            done.set()

        threading.Thread(target=stop_scheduler, name="shutdown", daemon=True).start()
        if not done.wait(grace):
            log.warning("grace period over: leaving; unfinished claims expire by themselves")
        if self.server is not None:
            self.server.close()
        self.app.close()
        for old in self._retired:
            old.close()
        log.info("stopped")
        return 0

    def _install_signals(self) -> None:
        def on_stop(signum: int, frame: FrameType | None) -> None:
            self.stop.set()

        def on_hup(signum: int, frame: FrameType | None) -> None:
            self.reload_requested.set()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)

    def reload(self) -> bool:
        """Validate the config file again; swap it in only when it is valid."""
        try:
            config = load_config(self.config_path)
            new = App(config)
        except ConfigError as exc:
            log.error("reload failed, keeping the running config: %s", "; ".join(exc.problems))
            return False
        except FeedbotError as exc:
            log.error("reload failed, keeping the running config: %s", exc)
            return False
        old_server = (self.app.config.server.host, self.app.config.server.port)
        if (config.server.host, config.server.port) != old_server:
            log.warning("server.host/server.port changes take effect after a restart")
        new.sync_upstreams()
        _start_workers(new)
        with self._apps_lock:
            old, self.app = self.app, new
            old.poller.stop.set()
            self._retired.append(old)
        self.pinger = self._pinger(config)
        self._web = self._build_web(new)
        self._fingerprint = None
        self._close_idle_retired()
        log.info("config reloaded from %s", self.config_path)
        return True

    # ------------------------------------------------------------------ ticks
    @contextmanager
    def _current(self) -> Iterator[App]:
        with self._apps_lock:
            app = self.app
            self._in_use[id(app)] = self._in_use.get(id(app), 0) + 1
        try:
            yield app
        finally:
            with self._apps_lock:
                self._in_use[id(app)] -= 1
            self._close_idle_retired()

    def _close_idle_retired(self) -> None:
        with self._apps_lock:
            idle = [a for a in self._retired if not self._in_use.get(id(a))]
            self._retired = [a for a in self._retired if self._in_use.get(id(a))]
        for app in idle:
            app.close()

    def _beat(self) -> None:
        self.heartbeat = datetime.now(UTC)

    def poll_tick(self) -> None:
        self._beat()
        with self._current() as app:
            if self.stop.is_set():
                return
            result = app.poller.run_cycle()
            for r in result.results:
                metrics.record_poll(r)
            if result.results:
                metrics.record_cycle(len(result.results), result.seconds)
            if any(r.announced for r in result.results) and not self.stop.is_set():
                self.scheduler.modify_job("deliver", next_run_time=datetime.now(UTC))  # now

    def deliver_tick(self) -> None:
        self._beat()
        with self._current() as app:
            if self.stop.is_set() or not app.config.webhook:
                return
            app.deliverer.drain_once()

    def publish_tick(self, *, force: bool = False) -> None:
        self._beat()
        with self._current() as app:
            fingerprint = self._store_fingerprint(app)
            every = app.config.daemon.publish_every.total_seconds()
            stale = time.monotonic() - self._last_publish >= every
            if not force and not stale and fingerprint == self._fingerprint:
                return
            results = app.publish()
            self._fingerprint = fingerprint
            self._last_publish = time.monotonic()
            changed = []
            for r in results:
                metrics.record_publish(r.name, r.seconds)
                if any(p.suffix == ".atom" for p in r.changed):
                    changed.append(f"{app.config.server.public_url}/{r.name}.atom")
            if self.pinger is not None:
                now = app.clock()
                if changed:
                    self.pinger.queue(changed, now)
                self.pinger.flush(now)

    def housekeeping_tick(self) -> None:
        self._beat()
        with self._current() as app:
            d = app.config.daemon
            result = housekeeping.run(app.db, app.clock(), keep_entries=d.keep_entries,
                                      keep_done=app.config.notify.keep_done)  # fmt: skip
            if result.entries_pruned or result.deliveries_pruned:
                log.info("housekeeping: %s", result)

    @staticmethod
    def _store_fingerprint(app: App) -> tuple[Any, ...]:
        """Cheap change detection: two index lookups (see ``change_marker``)."""
        with app.db.read() as conn:
            return store_articles.change_marker(conn)

    @staticmethod
    def _pinger(config: Config) -> HubPinger | None:
        if config.websub.hub is None:
            return None
        return HubPinger(config.websub.hub, max_attempts=config.websub.max_attempts)
