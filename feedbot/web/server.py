"""Run a WSGI app on waitress, with a server object that can be started and stopped."""

from __future__ import annotations

import contextlib
import logging
import threading
from wsgiref.types import WSGIApplication

import waitress
from waitress import wasyncore

from feedbot import __version__
from feedbot.errors import DaemonError

logger = logging.getLogger(__name__)

# How long one poll of the socket map may block; bounds how late a close() is noticed.
POLL_SECONDS = 0.25


class Server:
    """A bound waitress server: ``run()`` serves until ``close()`` is called (any thread).

    It owns its socket map, so several servers can live in one process (tests, daemon).
    """

    def __init__(self, app: WSGIApplication, *, host: str, port: int, threads: int) -> None:
        self._map: dict[int, object] = {}
        try:
            self._server = waitress.create_server(
                app,
                map=self._map,
                host=host,
                port=port,
                threads=threads,
                ident=f"feedbot/{__version__}",
            )
        except OSError as exc:
            raise DaemonError(f"cannot listen: {exc}", resource=f"{host}:{port}") from exc
        listen = getattr(self._server, "effective_listen", None)
        if listen:
            self.host, self.port = str(listen[0][0]), int(listen[0][1])
        else:
            self.host = str(self._server.effective_host)
            self.port = int(self._server.effective_port)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._running = False
        self._closed = False

    @property
    def url(self) -> str:
        """The base URL the server answers on, e.g. ``http://127.0.0.1:8080``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def run(self) -> None:
        """Serve requests until ``close()``; then release the sockets and worker threads."""
        with self._lock:
            if self._running or self._stopping.is_set():
                return
            self._running = True
        logger.info("serving on %s", self.url)
        try:
            while not self._stopping.is_set():
                wasyncore.loop(timeout=POLL_SECONDS, use_poll=True, map=self._map, count=1)
        finally:
            self._release()
            self._stopped.set()
            logger.info("stopped serving on %s", self.url)

    def close(self, timeout: float = 10.0) -> None:
        """Stop serving; wait up to *timeout* seconds for ``run()`` to return. Idempotent."""
        with self._lock:
            self._stopping.set()
            running = self._running
        if running:
            self._wake()
            self._stopped.wait(timeout)
        else:
            self._release()

    def _wake(self) -> None:
        pull = getattr(self._server, "pull_trigger", None)
        if pull is not None and not self._stopped.is_set():
            # run() may be releasing the trigger at this very moment; the poll timeout
            # bounds the wait anyway.
            with contextlib.suppress(OSError, ValueError):
                pull()

    def _release(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._server.task_dispatcher.shutdown()
        wasyncore.close_all(self._map, ignore_all=True)


def serve(
    app: WSGIApplication, host: str = "127.0.0.1", port: int = 8080, threads: int = 4
) -> Server:
    """Bind *app* on *host*:*port* (``port=0`` picks a free port; see ``Server.port``).

    The socket is bound on return; call ``run()`` (often in a thread) and later ``close()``.
    """
    return Server(app, host=host, port=port, threads=threads)
