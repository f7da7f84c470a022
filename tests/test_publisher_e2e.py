"""The publisher end to end: import the seed with the CLI, publish, validate, serve."""

from __future__ import annotations

import gzip
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import feedparser
import pytest
import requests

from feedbot.cli import main
from feedbot.publish.validate import validate_atom
from tests.conftest import ROOT
from tests.test_importers import SEED_TITLES


def write_config(tmp_path: Path, port: int = 8080) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
database_url = "sqlite:///state/feedbot.sqlite3"
[server]
port = {port}
[[publish]]
name = "seed"
title = "Seed"
max_entries = 50
formats = ["atom", "rss", "json"]
""",
        encoding="utf-8",
    )
    return config


def test_seed_import_publish_validate(
    tmp_path: Path, seed_path: Path, shared_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_config(tmp_path))
    assert main(["--config", config, "import", str(seed_path)]) == 0
    assert "imported: 9 added, 0 updated, 0 unchanged" in capsys.readouterr().out
    assert main(["--config", config, "import", str(seed_path)]) == 0
    assert "imported: 0 added, 0 updated, 9 unchanged" in capsys.readouterr().out

    assert main(["--config", config, "publish"]) == 0
    atom = tmp_path / "feeds" / "seed.atom"
    first = atom.read_bytes()
    mtime = atom.stat().st_mtime_ns
    assert validate_atom(first, shared_dir / "standards" / "atom.rng") == []

    parsed = feedparser.parse(first)
    assert not parsed.bozo
    # newest first: undated listing articles get stable dates in listing order, first = newest
    assert [e.title for e in parsed.entries] == SEED_TITLES
    ids = [e.id for e in parsed.entries]
    assert len(set(ids)) == 9
    assert all(i.startswith("tag:feedbot.localhost,2026:") for i in ids)
    for entry in parsed.entries:
        assert "Ă" not in entry.title + entry.summary + entry.content[0].value
    assert parsed.feed.language == "fr"

    assert main(["--config", config, "publish"]) == 0
    assert atom.read_bytes() == first
    assert atom.stat().st_mtime_ns == mtime

    # the long articles keep their sub-headings
    content = {e.title: e.content[0].value for e in parsed.entries}
    assert "<h3>Amende salée</h3>" in content[SEED_TITLES[3]]
    assert "<h3>Serrage de vis</h3>" in content[SEED_TITLES[8]]
    assert "<h3>Tolérance zéro</h3>" in content[SEED_TITLES[8]]


BAD_IMPORTS = [
    ("empty.txt", b"", "{path}: file is empty"),
    (
        "data.bin",
        b"\x00\x01\x02 not text",
        "{path}: unknown format: not a listing (no • line), Markdown (.md) or JSON Lines (.jsonl)",
    ),
    (
        "bad.jsonl",
        b'{"title": "ok"}\n{not json}\n',
        "{path}:2: not valid JSON: Expecting property name enclosed in double quotes",
    ),
]


@pytest.mark.parametrize(("name", "data", "message"), BAD_IMPORTS, ids=[b[0] for b in BAD_IMPORTS])
def test_bad_import_names_the_file_and_imports_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, data: bytes, message: str
) -> None:
    config = str(write_config(tmp_path))
    good = tmp_path / "good.jsonl"
    good.write_text('{"title": "A good article"}\n', encoding="utf-8")
    bad = tmp_path / name
    bad.write_bytes(data)
    assert main(["--config", config, "import", str(good), str(bad)]) == 1
    err = capsys.readouterr().err
    assert message.format(path=bad) in err
    assert main(["--config", config, "publish"]) == 0
    assert feedparser.parse((tmp_path / "feeds" / "seed.atom").read_bytes()).entries == []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path, seed_path: Path) -> Iterator[str]:
    port = free_port()
    config = str(write_config(tmp_path, port))
    assert main(["--config", config, "import", str(seed_path)]) == 0
    assert main(["--config", config, "publish"]) == 0
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "feedbot.cli", "--config", config, "serve"],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                requests.get(base + "/", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        yield base
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        log.close()


def test_served_feed_conditional_get_and_gzip(served: str) -> None:
    url = served + "/seed.atom"
    first = requests.get(url, headers={"Accept-Encoding": "identity"}, timeout=5)
    assert first.status_code == 200
    assert first.headers["Content-Type"] == "application/atom+xml; charset=utf-8"
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    again = requests.get(
        url, headers={"If-None-Match": etag, "Accept-Encoding": "identity"}, timeout=5
    )
    assert again.status_code == 304
    assert again.content == b""
    since = requests.get(
        url, headers={"If-Modified-Since": modified, "Accept-Encoding": "identity"}, timeout=5
    )
    assert since.status_code == 304
    raw = requests.get(url, headers={"Accept-Encoding": "gzip"}, timeout=5, stream=True)
    assert raw.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(raw.raw.read()) == first.content
    assert requests.get(served + "/../state/feedbot.sqlite3", timeout=5).status_code == 404
    page = requests.get(served + "/", timeout=5)
    assert "seed.atom" in page.text
