"""Pure: which webhooks want an article, and for which event."""

from __future__ import annotations

from collections.abc import Sequence

from feedbot.config import WebhookConfig

NEW, UPDATED = "article.new", "article.updated"


def wanted_by(
    webhooks: Sequence[WebhookConfig], topics: Sequence[str], upstream: str | None, event: str = NEW
) -> list[str]:
    """Names of the enabled webhooks that want this article.

    A webhook that names topics and/or upstreams wants an article matching any of them; one
    that names neither wants every relevant article. Updates go only to webhooks with
    ``updates = true``.
    """
    out = []
    for hook in webhooks:
        if not hook.enabled or (event == UPDATED and not hook.updates):
            continue
        if (
            (not hook.topics and not hook.upstreams)
            or set(hook.topics) & set(topics)
            or (upstream is not None and upstream in hook.upstreams)
        ):
            out.append(hook.name)
    return out
