"""`feedbot feeds …`, `feedbot opml …` and `feedbot poll` through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from feedbot.cli import main
from feedbot.opml import read_opml
from tests.feedgen_util import news, rss
from tests.loopback import LoopbackServer, Response

NESTED = b"""<?xml version="1.0"?>
<opml version="2.0"><head><title>mine</title></head><body>
  <outline text="Tech">
    <outline text="China">
      <outline type="rss" text="Pandaily" xmlUrl="https://pandaily.example/feed" category="/china-tech"/>
    </outline>
    <outline type="rss" text="Tech Daily" xmlUrl="https://techdaily.example/rss"/>
  </outline>
  <outline type="rss" text="Tech Daily" xmlUrl="https://techdaily.example/other"/>
</body></opml>
"""


def config(tmp_path: Path, extra: str = "") -> str:
    path = tmp_path / "config.toml"
    path.write_text('database_url = "sqlite:///state/db.sqlite3"\n' + extra, encoding="utf-8")
    return str(path)


def test_opml_import_nested_and_round_trip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.opml"
    src.write_bytes(NESTED)
    cfg = config(tmp_path)
    assert main(["--config", cfg, "opml", "import", str(src), "--topic", "alibaba"]) == 0
    assert "opml: 3 added, 0 already present" in capsys.readouterr().out
    assert main(["--config", cfg, "opml", "import", str(src)]) == 0
    assert "opml: 0 added, 3 already present" in capsys.readouterr().out
    out = tmp_path / "out.opml"
    assert main(["--config", cfg, "opml", "export", str(out)]) == 0
    again = {(f.name, f.url, f.topics) for f in read_opml(out)}
    assert again == {
        ("pandaily", "https://pandaily.example/feed", ("china-tech",)),
        ("tech-daily", "https://techdaily.example/rss", ("alibaba",)),
        ("tech-daily-2", "https://techdaily.example/other", ("alibaba",)),
    }


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (b"<opml><body><outline", "not well-formed XML"),
        (b"<rss/>", "not an OPML document (no <opml><body>)"),
        (
            b'<opml><body><outline text="x" xmlUrl="file:///etc/passwd"/></body></opml>',
            "outline 'x': xmlUrl is not an http(s) URL",
        ),
    ],
)
def test_bad_opml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], doc: bytes, message: str
) -> None:
    src = tmp_path / "bad.opml"
    src.write_bytes(doc)
    assert main(["--config", config(tmp_path), "opml", "import", str(src)]) == 1
    err = capsys.readouterr().err
    assert str(src) in err
    assert message in err


def test_feeds_add_disable_poll_and_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with LoopbackServer() as server:
        server.route("/ok", lambda r: Response(200, rss(news(3))))
        server.route("/down", lambda r: Response(503, b"maintenance"))
        cfg = config(tmp_path, '[poll]\ndeadline = "3s"\n')
        assert (
            main(["--config", cfg, "feeds", "add", "ok", server.url("/ok"), "--topic", "alibaba"])
            == 0
        )
        assert main(["--config", cfg, "feeds", "add", "down", server.url("/down")]) == 0
        assert main(["--config", cfg, "feeds", "add", "bad", "ftp://x"]) == 2
        assert "url: not an http(s) URL" in capsys.readouterr().err
        assert main(["--config", cfg, "poll", "--all", "--json"]) == 0
        lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
        by_name = {x["upstream"]: x for x in lines[:-1]}
        assert by_name["ok"]["new"] == 3
        assert by_name["down"]["outcome"] == "retry_later"
        assert lines[-1]["feeds"] == 2
        assert lines[-1]["errors"] == {"retry_later": 1}
        assert main(["--config", cfg, "feeds", "disable", "ok"]) == 0
        assert main(["--config", cfg, "feeds", "list"]) == 0
        listing = capsys.readouterr().out
        assert "HTTP 503" in listing
        ok_line = next(line for line in listing.splitlines() if line.startswith("ok "))
        assert "disabled by hand" in ok_line
        assert main(["--config", cfg, "feeds", "remove", "down"]) == 0
        assert main(["--config", cfg, "feeds", "remove", "down"]) == 1
        assert "down: no such upstream" in capsys.readouterr().err


def test_feeds_add_names_the_bad_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--config", config(tmp_path), "feeds", "add", "Bad Name", "ftp://x/f"])
    assert code == 2
    err = capsys.readouterr().err
    assert "name: must match" in err
    assert "url: not an http(s) URL" in err
