"""Build the topic matcher from the shipped topics and the config's ``[topics.NAME]`` tables."""

from __future__ import annotations

from dataclasses import replace

from feedbot.config import Config, TopicConfig
from feedbot.errors import ConfigError
from feedbot.relevance.topics import DEFAULT_FIELDS, Matcher, TopicSpec, load_default_topics


def _merge(name: str, base: TopicSpec | None, cfg: TopicConfig) -> TopicSpec:
    context = tuple((term, tuple(words)) for term, words in cfg.context_terms.items())
    if base is None or cfg.replace:
        return TopicSpec(
            name=name,
            terms=cfg.terms,
            exclude=cfg.exclude,
            regexes=cfg.regexes,
            fields=tuple(cfg.fields or DEFAULT_FIELDS),
            includes=cfg.includes,
            context_terms=context,
            description=cfg.description or "",
        )
    return replace(
        base,
        terms=base.terms + tuple(t for t in cfg.terms if t not in base.terms),
        exclude=base.exclude + cfg.exclude,
        regexes=base.regexes + cfg.regexes,
        fields=tuple(cfg.fields) if cfg.fields else base.fields,
        includes=base.includes + tuple(i for i in cfg.includes if i not in base.includes),
        context_terms=base.context_terms + context,
        description=cfg.description or base.description,
    )


def topic_specs(config: Config) -> dict[str, TopicSpec]:
    """Shipped topics, extended or replaced by the config's. Raises ConfigError naming the key."""
    specs = load_default_topics()
    for name, cfg in config.topics.items():
        try:
            specs[name] = _merge(name, specs.get(name), cfg)
        except ValueError as exc:
            raise ConfigError([f"topics.{name}.{exc}"]) from None
    return specs


def build_matcher(config: Config) -> Matcher:
    specs = topic_specs(config)
    try:
        return Matcher(specs.values())
    except ValueError as exc:
        raise ConfigError([str(exc)]) from None
