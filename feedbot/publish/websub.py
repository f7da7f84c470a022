"""WebSub publisher pings: ``POST hub`` with ``hub.mode=publish&hub.url=<self>``, retried."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

import requests

from feedbot import USER_AGENT

log = logging.getLogger(__name__)


@dataclass
class _Ping:
    url: str
    attempts: int
    due: datetime


class HubPinger:
    """Queues pings for changed feeds and sends them; a failed ping is retried with backoff.

    Pending pings live in memory: after a restart the daemon publishes (and so pings) anyway.
    """

    def __init__(
        self,
        hub: str,
        *,
        max_attempts: int = 5,
        session: requests.Session | None = None,
        timeout: float = 10.0,
        rand: random.Random | None = None,
    ) -> None:
        self.hub = hub
        self.max_attempts = max_attempts
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.timeout = timeout
        self.rand = rand or random.Random()
        self.pending: dict[str, _Ping] = {}

    def queue(self, feed_urls: list[str], now: datetime) -> None:
        for url in feed_urls:
            self.pending[url] = _Ping(url, 0, now)

    def flush(self, now: datetime) -> int:
        """Send every due ping; returns how many the hub accepted."""
        accepted = 0
        for url, ping in list(self.pending.items()):
            if ping.due > now:
                continue
            error = self._send(url)
            if error is None:
                accepted += 1
                del self.pending[url]
                continue
            ping.attempts += 1
            if ping.attempts >= self.max_attempts:
                log.error(
                    "websub: giving up pinging %s for %s after %d attempts: %s",
                    self.hub,
                    url,
                    ping.attempts,
                    error,
                )
                del self.pending[url]
            else:
                wait = timedelta(
                    seconds=30 * 2 ** (ping.attempts - 1) * self.rand.uniform(0.5, 1.0)
                )
                ping.due = now + wait
                log.warning(
                    "websub: ping to %s for %s failed (%s); retrying in %ds",
                    self.hub,
                    url,
                    error,
                    wait.total_seconds(),
                )
        return accepted

    def _send(self, url: str) -> str | None:
        try:
            resp = self.session.post(
                self.hub, data={"hub.mode": "publish", "hub.url": url}, timeout=self.timeout
            )
        except requests.RequestException as exc:
            return f"{type(exc).__name__}"
        if 200 <= resp.status_code < 300:
            return None
        return f"HTTP {resp.status_code}"
