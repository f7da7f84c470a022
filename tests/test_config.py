from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from feedbot.config import config_from_mapping, load_config
from feedbot.errors import ConfigError
from feedbot.relevance.setup import build_matcher
from feedbot.relevance.topics import MatchInput
from tests.conftest import ROOT

GOOD_PUBLISH = {"name": "news", "title": "News"}

BAD = [
    ({"bogus": 1}, "bogus: unknown key"),
    (
        {"publish": [{**GOOD_PUBLISH, "max_entries": 0}]},
        "publish[0].max_entries: must be at least 1",
    ),
    ({"publish": [{"name": "news"}]}, "publish[0].title: required"),
    (
        {"publish": [{**GOOD_PUBLISH, "formats": ["pdf"]}]},
        "publish[0].formats[0]: must be one of 'atom', 'rss' or 'json'",
    ),
    ({"publish": [GOOD_PUBLISH, GOOD_PUBLISH]}, "publish[1].name: duplicate name 'news'"),
    (
        {"publish": [{**GOOD_PUBLISH, "name": "News!"}]},
        "publish[0].name: must match ^[a-z0-9][a-z0-9_-]*$",
    ),
    ({"upstream": [{"name": "a", "url": "ftp://x"}]}, "upstream[0].url: not an http(s) URL"),
    (
        {"upstream": [{"name": "a", "url": "https://x/f", "interval": "soon"}]},
        "upstream[0].interval: must be a duration such as 30s, 5m, 2h or 1d",
    ),
    (
        {"upstream": [{"name": "a", "url": "https://x/f", "backfill": "all"}]},
        'upstream[0].backfill: must be "none", "latest:K" or "since:YYYY-MM-DD"',
    ),
    (
        {"upstream": [{"name": "a", "url": "https://x/f", "enabled": "yes"}]},
        "upstream[0].enabled: must be true or false",
    ),
    (
        {"upstream": [{"name": "a", "url": "https://x/f", "intervall": "1h"}]},
        "upstream[0].intervall: unknown key",
    ),
    ({"upstream": ["https://x/f"]}, "upstream[0]: must be a table"),
    (
        {"upstream": [{"name": "a", "url": "https://x/f", "headers": 3}]},
        "upstream[0].headers: must be a table",
    ),
    ({"poll": {"workers": "many"}}, "poll.workers: must be an integer"),
    ({"poll": {"connections": 0}}, "poll.connections: must be at least 1"),
    ({"server": {"port": 70000}}, "server.port: must be at most 65535"),
    ({"server": {"host": "0.0.0.0"}}, "server: binding beyond loopback requires server.token"),
    (
        {"database_url": "mysql://x"},
        "database_url: must start with sqlite:// or postgresql+psycopg://",
    ),
    (
        {"webhook": [{"name": "w", "kind": "irc", "url": "https://x"}]},
        "webhook[0].kind: must be one of 'slack', 'discord', 'mattermost', 'teams', 'generic' or 'apprise'",
    ),
    (
        {"webhook": [{"name": "w", "kind": "slack", "url": "${FEEDBOT_TEST_UNSET}"}]},
        "webhook[0].url: environment variable FEEDBOT_TEST_UNSET is not set",
    ),
    (
        {"topics": {"x": {"regexes": ["("]}}},
        "topics.x.regexes: bad regex '(': missing ), unterminated subpattern at position 0",
    ),
]


@pytest.mark.parametrize(("raw", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_config_names_the_key(raw: dict[str, object], message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        config_from_mapping(raw, base_dir=tmp_path, env={})
    assert message in err.value.problems


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    raw = {"bogus": 1, "poll": {"workers": 0}, "publish": [{"name": "x"}]}
    with pytest.raises(ConfigError) as err:
        config_from_mapping(raw, base_dir=tmp_path, env={})
    assert sorted(err.value.problems) == [
        "bogus: unknown key",
        "poll.workers: must be at least 1",
        "publish[0].title: required",
    ]


def test_env_interpolation_and_paths(tmp_path: Path) -> None:
    raw = {
        "webhook": [{"name": "w", "kind": "slack", "url": "${HOOK}", "secret": "pre-${S}"}],
        "upstream": [{"name": "a", "url": "https://x/f", "interval": "15m"}],
    }
    config = config_from_mapping(
        raw, base_dir=tmp_path, env={"HOOK": "https://hooks.example/T/1", "S": "z"}
    )
    assert config.webhook[0].url == "https://hooks.example/T/1"
    assert config.webhook[0].secret == "pre-z"
    assert "hooks.example" not in repr(config.webhook[0])
    assert config.upstream[0].interval == timedelta(minutes=15)
    assert config.state_dir == tmp_path / "state"
    assert config.database_url == f"sqlite:///{tmp_path}/state/feedbot.sqlite3"


def test_unreadable_and_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "missing.toml")
    assert err.value.problems == [f"{tmp_path / 'missing.toml'}: no such file"]
    (tmp_path / "other").mkdir()
    bad = tmp_path / "other" / "bad.toml"
    bad.write_text("publish = [", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert err.value.problems[0].startswith(f"{bad}: not valid TOML: ")


def test_shipped_config_is_valid() -> None:
    config = load_config(ROOT / "config.toml", env={})
    assert [p.name for p in config.publish] == ["alibaba", "china-tech"]
    assert config.server.host == "127.0.0.1"
    assert config.import_paths == (ROOT / "examples" / "articles",)


TOPIC_PROBLEMS = [
    (
        {"x": {"terms": []}},
        "topics.x.terms: a topic needs terms, regexes, context_terms or includes",
    ),
    ({"x": {"terms": ["a"], "includes": ["nope"]}}, "topics.x.includes: unknown topic 'nope'"),
]


@pytest.mark.parametrize(("topics", "message"), TOPIC_PROBLEMS, ids=[m for _, m in TOPIC_PROBLEMS])
def test_bad_topics_name_the_key(topics: dict[str, object], message: str, tmp_path: Path) -> None:
    config = config_from_mapping({"topics": topics}, base_dir=tmp_path, env={})
    with pytest.raises(ConfigError) as err:
        build_matcher(config)
    assert err.value.problems == [message]


def test_config_topics_extend_the_shipped_ones(tmp_path: Path) -> None:
    config = config_from_mapping(
        {"topics": {"alibaba": {"terms": ["Freshippo"]}, "ev": {"terms": ["BYD", "NIO"]}}},
        base_dir=tmp_path,
        env={},
    )
    matcher = build_matcher(config)
    assert matcher.match(MatchInput(title="Freshippo opens 50 stores")).topics == (
        "alibaba",
        "china-tech",
    )
    assert matcher.match(MatchInput(title="Taobao sales rise")).topics == ("alibaba", "china-tech")
    assert matcher.match(MatchInput(title="BYD outsells rivals")).topics == ("ev",)


def test_check_command_and_feedbot_config_env(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from feedbot.cli import main

    good = tmp_path / "good.toml"
    good.write_text('[[publish]]\nname = "n"\ntitle = "N"\n', encoding="utf-8")
    monkeypatch.setenv("FEEDBOT_CONFIG", str(good))
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert f"config: {good} is valid" in out
    assert "topics: alibaba, china-tech" in out
    (tmp_path / "other").mkdir()
    bad = tmp_path / "other" / "bad.toml"
    bad.write_text("bogus = 1\n[poll]\nworkers = 0\n", encoding="utf-8")
    assert main(["--config", str(bad), "check"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "feedbot: config: poll.workers: must be at least 1",
        "feedbot: config: bogus: unknown key",
    ]
    assert list((tmp_path / "other").iterdir()) == [bad]  # nothing written


def test_upstreams_are_frozen_and_carry_no_instance_dict(tmp_path: Path) -> None:
    """The one section that grows with the number of feeds stays small per entry (see
    docs/architecture.md) and is as immutable as the rest of the config."""
    raw = {"upstream": [{"name": "a", "url": "https://x/f", "headers": {"X-Key": "1"}}]}
    up = config_from_mapping(raw, base_dir=tmp_path, env={}).upstream[0]
    assert not hasattr(up, "__dict__")
    assert (up.name, up.url, up.headers, up.enabled, up.backfill) == (
        "a", "https://x/f", {"X-Key": "1"}, True, "none",
    )  # fmt: skip
    with pytest.raises(AttributeError):
        up.url = "https://y/f"  # type: ignore[misc]
