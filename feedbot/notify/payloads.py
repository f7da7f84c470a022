"""Notification payloads per destination kind: the registry callers use.

``KINDS`` maps a kind name (as written in the config) to its ``Kind``: limits as data
plus pure ``render`` / ``render_digest`` functions returning JSON-ready dicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from feedbot.errors import NotifyError
from feedbot.notify.kinds import discord, generic, mattermost, slack, teams
from feedbot.notify.kinds.base import Kind, Notice, Payload, Rate, notice_from_article

__all__ = ["KINDS", "Kind", "Notice", "Payload", "Rate", "kind", "notice_from_article"]

KINDS: Mapping[str, Kind] = MappingProxyType(
    {k.name: k for k in (slack.KIND, discord.KIND, mattermost.KIND, teams.KIND, generic.KIND)}
)


def kind(name: str) -> Kind:
    """The kind called *name*; ``NotifyError`` names the known kinds otherwise."""
    try:
        return KINDS[name]
    except KeyError:
        known = ", ".join(sorted(KINDS))
        raise NotifyError(f"unknown kind {name!r} (known: {known})", resource=name) from None
