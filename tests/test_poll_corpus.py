"""Every corpus file served by a loopback upstream and polled through the whole pipeline."""

from __future__ import annotations

import mimetypes
from pathlib import Path

from sqlalchemy import func, select

from feedbot.app import App
from feedbot.config import config_from_mapping
from feedbot.errors import ParseError
from feedbot.poll.parse import parse_feed
from feedbot.store import upstreams as store_upstreams
from feedbot.store.schema import entries
from tests.loopback import LoopbackServer, Request, Response


def test_whole_corpus_through_the_pipeline(tmp_path: Path, corpus_dir: Path) -> None:
    files = sorted(p for p in corpus_dir.iterdir() if p.name != "INDEX.tsv")

    def serve(req: Request) -> Response:
        path = corpus_dir / req.path.rsplit("/", 1)[-1]
        kind = (
            "application/json"
            if path.suffix == ".json"
            else "text/html"
            if path.suffix == ".html"
            else "application/xml"
        )
        return Response(200, path.read_bytes(), {"Content-Type": kind})

    with LoopbackServer() as server:
        for f in files:
            server.route(f"/{f.name}", serve)
        config = config_from_mapping(
            {
                "poll": {"workers": 4, "per_host": 4, "deadline": "20s"},
                "upstream": [
                    {"name": f"c{i}", "url": server.url(f"/{f.name}")} for i, f in enumerate(files)
                ],
            },
            base_dir=tmp_path,
        )
        app = App(config)
        app.sync_upstreams()
        results = {r.upstream: r for r in app.poller.run_cycle(include_not_due=True).results}
        external = [
            r for r in server.requests if not r.path.startswith("/") or r.path.count("/") > 1
        ]
    assert len(results) == len(files)
    assert external == []  # nothing but the feeds themselves was fetched
    with app.db.read() as conn:
        stored = dict(
            conn.execute(
                select(entries.c.upstream_id, func.count()).group_by(entries.c.upstream_id)
            ).all()
        )
        ups = {u.name: u for u in store_upstreams.list_all(conn)}
    for i, f in enumerate(files):
        result, up = results[f"c{i}"], ups[f"c{i}"]
        try:
            parsed = parse_feed(
                f.read_bytes(), {"content-type": mimetypes.guess_type(f.name)[0] or ""}, "http://x/"
            )
        except ParseError:
            parsed = None
        if result.outcome == "ok":
            assert parsed is not None, f.name
            assert stored.get(up.id, 0) == len({e.key for e in parsed.entries}), f.name
        else:
            assert result.outcome in ("parse_error", "not_a_feed"), (f.name, result)
            assert result.error, f.name
            assert up.last_error == result.error
    app.close()
