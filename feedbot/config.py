"""``config.toml`` → typed, validated, frozen configuration.

Validation happens once, here. Every problem becomes one line naming its key path
(``publish[0].max_entries: must be at least 1``) and :func:`load_config` raises a single
:class:`~feedbot.errors.ConfigError` carrying all of them; the CLI prints them and exits 2.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import field as dataclass_field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass as pydantic_dataclass

from feedbot.errors import ConfigError

DEFAULT_CONFIG = "config.toml"
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}
_NAME = r"^[a-z0-9][a-z0-9_-]*$"


def parse_duration(value: object) -> timedelta:
    """``90``, ``"90s"``, ``"5m"``, ``"2h"``, ``"1d"`` → timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 30s, 5m, 2h or 1d")
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    if isinstance(value, str) and (m := _DURATION.match(value)):
        return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    raise ValueError("must be a duration such as 30s, 5m, 2h or 1d")


def _http_url(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL")
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
HttpUrl = Annotated[str, BeforeValidator(_http_url)]
Name = Annotated[str, Field(pattern=_NAME, max_length=64)]


_STRICT_KEYS = ConfigDict(extra="forbid", strict=False)  # every section; models are frozen too


class _Model(BaseModel):
    model_config = ConfigDict(**_STRICT_KEYS, frozen=True)


class ServerConfig(_Model):
    """The HTTP listener: published feeds, status page, health and metrics."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    base_url: HttpUrl | None = None
    token: str | None = None
    threads: int = Field(default=4, ge=1, le=64)

    @property
    def public_url(self) -> str:
        return (self.base_url or f"http://{self.host}:{self.port}").rstrip("/")

    @model_validator(mode="after")
    def _token_off_loopback(self) -> ServerConfig:
        if self.host not in ("127.0.0.1", "localhost", "::1") and not self.token:
            raise ValueError("binding beyond loopback requires server.token")
        return self


class PublishConfig(_Model):
    """One published feed: ``feeds/<name>.atom`` (and .rss/.json on request)."""

    name: Name
    title: str = Field(min_length=1)
    subtitle: str | None = None
    topics: tuple[str, ...] = ()
    max_entries: int = Field(default=50, ge=1, le=10_000)
    formats: tuple[Literal["atom", "rss", "json"], ...] = ("atom",)
    language: str | None = None
    author: str = "feedbot"
    site_url: HttpUrl | None = None


class PollConfig(_Model):
    """Politeness and limits for polling upstream feeds."""

    # polls processed at once after their fetch (parse, relevance, store), besides the
    # batches worker processes hold (see pipeline.py)
    workers: int = Field(default=16, ge=1, le=256)
    # fetches in flight at once, each host limited to per_host: waiting on the network
    # costs a thread, not a worker
    connections: int = Field(default=64, ge=1, le=1024)
    per_host: int = Field(default=2, ge=1, le=64)
    # worker processes that process (parse, match, store) large responses; unset: one per
    # CPU core (none on one core)
    processes: int | None = Field(default=None, ge=0, le=64)
    min_interval: Duration = timedelta(minutes=5)
    max_interval: Duration = timedelta(hours=24)
    max_failures: int = Field(default=20, ge=1)
    connect_timeout: Duration = timedelta(seconds=10)
    read_timeout: Duration = timedelta(seconds=30)
    deadline: Duration = timedelta(seconds=60)
    max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    lease: Duration = timedelta(minutes=5)


@pydantic_dataclass(frozen=True, slots=True, config=_STRICT_KEYS)
class UpstreamConfig:
    """One upstream feed to watch.

    The one section that grows with the number of feeds, so a slotted dataclass rather
    than a model: 10,000 of them take about 1.8 MiB instead of 6.4 (no instance dict and
    no set of fields given per object). Validated like the models around it.
    """

    name: Name
    url: HttpUrl
    topics: tuple[str, ...] = ()
    interval: Duration | None = None
    enabled: StrictBool = True
    headers: dict[str, str] = dataclass_field(default_factory=dict)
    backfill: str = "none"

    @classmethod
    def validate(cls, raw: Mapping[str, Any]) -> UpstreamConfig:
        """One upstream from a mapping (``feedbot feeds add``); raises ValidationError."""
        return _UPSTREAM.validate_python(raw)

    @field_validator("backfill")
    @classmethod
    def _backfill(cls, value: str) -> str:
        if value == "none" or re.fullmatch(r"latest:\d+", value):
            return value
        if m := re.fullmatch(r"since:(\d{4}-\d{2}-\d{2})", value):
            return f"since:{m.group(1)}"
        raise ValueError('must be "none", "latest:K" or "since:YYYY-MM-DD"')


_UPSTREAM: TypeAdapter[UpstreamConfig] = TypeAdapter(UpstreamConfig)


class TopicConfig(_Model):
    """A user-defined topic, or additions to a shipped one (``replace = true`` to redefine it)."""

    terms: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    regexes: tuple[str, ...] = ()
    fields: tuple[Literal["title", "summary", "content", "categories", "link"], ...] | None = None
    includes: tuple[str, ...] = ()
    context_terms: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    description: str | None = None
    replace: StrictBool = False

    @field_validator("regexes")
    @classmethod
    def _regexes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"bad regex {pattern!r}: {exc}") from None
        return value


class WebhookConfig(_Model):
    """One chat or JSON webhook."""

    name: Name
    kind: Literal["slack", "discord", "mattermost", "teams", "generic", "apprise"]
    url: str = Field(min_length=1)
    topics: tuple[str, ...] = ()
    upstreams: tuple[str, ...] = ()
    template: str | None = None
    secret: str | None = None
    rate_limit: float | None = Field(default=None, gt=0)
    digest_threshold: int = Field(default=10, ge=2)
    max_attempts: int = Field(default=10, ge=1)
    updates: StrictBool = False
    enabled: StrictBool = True

    @model_validator(mode="after")
    def _url_for_kind(self) -> WebhookConfig:
        if self.kind != "apprise":
            _http_url(self.url)
        return self

    def __repr__(self) -> str:  # never show the URL or secret
        return f"WebhookConfig(name={self.name!r}, kind={self.kind!r})"


class NotifyConfig(_Model):
    """The delivery worker: leases, timeouts and retry policy shared by every webhook."""

    lease: Duration = timedelta(minutes=2)
    connect_timeout: Duration = timedelta(seconds=5)
    read_timeout: Duration = timedelta(seconds=15)
    batch: int = Field(default=200, ge=1, le=10_000)
    retry_base: Duration = timedelta(seconds=30)
    retry_cap: Duration = timedelta(hours=6)
    keep_done: Duration = timedelta(days=30)


class WebSubConfig(_Model):
    """With a hub, published feeds carry rel="hub" and every changed publish pings it."""

    hub: HttpUrl | None = None
    max_attempts: int = Field(default=5, ge=1)


class DaemonConfig(_Model):
    """``feedbot run``: how often each job ticks, shutdown grace, retention."""

    poll_tick: Duration = timedelta(seconds=5)
    deliver_tick: Duration = timedelta(seconds=2)
    publish_tick: Duration = timedelta(seconds=5)
    publish_every: Duration = timedelta(minutes=15)
    housekeeping_every: Duration = timedelta(hours=1)
    grace: Duration = timedelta(seconds=20)
    keep_entries: Duration = timedelta(days=90)


class Config(_Model):
    """The whole configuration; paths are absolute after loading."""

    database_url: str = "sqlite:///state/feedbot.sqlite3"
    state_dir: Path = Path("state")
    feeds_dir: Path = Path("feeds")
    authority: str = Field(default="feedbot.localhost", pattern=r"^[A-Za-z0-9.-]+$")
    import_paths: tuple[Path, ...] = ()
    server: ServerConfig = ServerConfig()
    publish: tuple[PublishConfig, ...] = ()
    poll: PollConfig = PollConfig()
    upstream: tuple[UpstreamConfig, ...] = ()
    topics: dict[str, TopicConfig] = Field(default_factory=dict)
    webhook: tuple[WebhookConfig, ...] = ()
    notify: NotifyConfig = NotifyConfig()
    websub: WebSubConfig = WebSubConfig()
    daemon: DaemonConfig = DaemonConfig()
    source: Path | None = None

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql+psycopg://", "postgresql://")):
            raise ValueError("must start with sqlite:// or postgresql+psycopg://")
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        for section in ("publish", "upstream", "webhook"):
            seen: set[str] = set()
            for i, item in enumerate(getattr(self, section)):
                if item.name in seen:
                    raise ValueError(f"{section}[{i}].name: duplicate name {item.name!r}")
                seen.add(item.name)
        return self


def _interpolate(value: Any, path: str, env: Mapping[str, str], problems: list[str]) -> Any:
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            if m.group(1) not in env:
                problems.append(f"{path}: environment variable {m.group(1)} is not set")
                return ""
            return env[m.group(1)]

        return _ENV.sub(sub, value)
    if isinstance(value, dict):
        return {
            k: _interpolate(v, f"{path}.{k}" if path else k, env, problems)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_interpolate(v, f"{path}[{i}]", env, problems) for i, v in enumerate(value)]
    return value


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not part.startswith(("function-", "lax-", "json-or-python", "is-instance")):
            out += f".{part}" if out else part
    return out


_MESSAGES = {
    "extra_forbidden": "unknown key",
    "unexpected_keyword_argument": "unknown key",  # the same, in a dataclass section
    "missing": "required",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "string_type": "must be a string",
    "tuple_type": "must be a list",
    "dict_type": "must be a table",
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
    "dataclass_type": "must be a table",
}


def _message(err: Mapping[str, Any]) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    if kind in ("greater_than_equal", "greater_than"):
        return f"must be at least {ctx.get('ge', ctx.get('gt'))}"
    if kind in ("less_than_equal", "less_than"):
        return f"must be at most {ctx.get('le', ctx.get('lt'))}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_pattern_mismatch":
        return f"must match {ctx.get('pattern')}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    return str(err["msg"])


def format_errors(exc: ValidationError) -> list[str]:
    """One ``key.path: reason`` line per pydantic error."""
    lines = []
    for err in exc.errors():
        loc = _loc(tuple(err["loc"]))
        msg = _message(err)
        lines.append(f"{loc}: {msg}" if loc else msg)  # model-level messages name their key
    return lines


def config_path(explicit: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path:
    """``--config`` wins, then ``FEEDBOT_CONFIG``, then ``./config.toml``."""
    return Path(explicit or env.get("FEEDBOT_CONFIG") or DEFAULT_CONFIG)


def load_config(path: Path, env: Mapping[str, str] | None = None) -> Config:
    """Read, interpolate and validate *path*. Raises ConfigError listing every problem."""
    env = os.environ if env is None else env
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from exc
    return config_from_mapping(raw, base_dir=path.resolve().parent, env=env, source=path)


def config_from_mapping(
    raw: Mapping[str, Any],
    *,
    base_dir: Path,
    env: Mapping[str, str] | None = None,
    source: Path | None = None,
) -> Config:
    """Validate an already-parsed mapping; relative paths are taken from *base_dir*."""
    problems: list[str] = []
    data = _interpolate(dict(raw), "", os.environ if env is None else env, problems)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(problems + format_errors(exc)) from None
    if problems:
        raise ConfigError(problems)
    return _resolve(config, base_dir, source)


def _resolve(config: Config, base: Path, source: Path | None) -> Config:
    def absolute(p: Path) -> Path:
        return p if p.is_absolute() else (base / p)

    url = config.database_url
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        rel = url[len("sqlite:///") :]
        if rel and rel != ":memory:":
            url = f"sqlite:///{absolute(Path(rel))}"
    return config.model_copy(
        update={
            "state_dir": absolute(config.state_dir),
            "feeds_dir": absolute(config.feeds_dir),
            "import_paths": tuple(absolute(p) for p in config.import_paths),
            "database_url": url,
            "source": source,
        }
    )
