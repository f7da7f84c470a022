"""The status page in real headless Chromium (Debian's ``chromium``, driven by Playwright).

Installs nothing: the system browser is used. Skipped when Chromium or Playwright is
missing, except under ``CI=true``, where a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from feedbot.store.db import Database
from tests.test_web_status import BROKEN_URL, SLACK_TAIL, UPSTREAM_TOKEN, make_config, populate
from tests.test_web_status import running as running_site

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} and CI=true")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (Path(CHROMIUM).is_file() or shutil.which("chromium")):
        _missing(f"{CHROMIUM} is not installed")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed")
    path = CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=path, headless=True, args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


def test_status_page_in_chromium_shows_upstreams_and_the_failing_error(
    tmp_path: Path, browser: Any
) -> None:
    url = f"sqlite:///{tmp_path / 'state' / 'feedbot.sqlite3'}"
    config = make_config(tmp_path, url)
    db = Database(url)
    populate(db, config)
    shot = tmp_path / "status.png"
    try:
        with running_site(db, config) as site:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            try:
                response = page.goto(site.server.url + "/", wait_until="load")
                assert response is not None
                assert response.status == 200
                assert page.title() == "feedbot status"
                table = page.locator("#upstreams table")
                assert table.is_visible()
                headers = table.locator("thead th").all_inner_texts()
                assert [h.strip() for h in headers] == [
                    "Upstream", "State", "Last success", "Last error", "Interval", "Next check",
                ]  # fmt: skip
                rows = table.locator("tbody tr")
                assert rows.count() == 4
                broken = page.locator('tr[data-upstream="broken"]')
                assert broken.is_visible()
                error = broken.locator(".error")
                assert error.is_visible()
                assert "answered 503 Service Unavailable" in error.inner_text()
                assert broken.locator(".badge").inner_text().strip() == "failing"
                # the hostile title is shown as text, and no script ran
                hostile = page.get_by_text('<script>alert("pwned")</script>', exact=False)
                assert hostile.is_visible()
                assert page.evaluate("document.scripts.length") == 0
                text = page.locator("body").inner_text()
                assert SLACK_TAIL not in text
                assert UPSTREAM_TOKEN not in text
                assert BROKEN_URL not in text
                page.screenshot(path=str(shot), full_page=True)
            finally:
                page.close()
    finally:
        db.close()
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 20_000  # a rendered page, not a blank image
