from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from feedbot.notify.secrets import SecretFilter, mask_secret, mask_url

SLACK = "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"
DISCORD = "https://discord.com/api/webhooks/123456789012345678/abcDEFghiJKLmnoPQRstuVWXyz"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        (SLACK, "https://hooks.slack.com/services/T00…/****"),
        (DISCORD, "https://discord.com/api/webhooks/1234…/****"),
        ("https://chat.example.org/hooks/3kq9x7wz1p", "https://chat.example.org/hooks/****"),
        (
            "https://prod-12.westeurope.logic.azure.com:443/workflows/9f2c1e0a7b6d4c3e8f1a"
            "/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers&sig=AbCd",
            "https://prod-12.westeurope.logic.azure.com:443/workflows/9f2c…/****"
            "?api-version=****&sp=****&sig=****",
        ),
        (
            "https://bot:hunter2@example.com:8443/hook?token=abc#x",
            "https://****@example.com:8443/****?token=****#****",
        ),
        ("https://example.com/", "https://example.com"),
        ("https://[::1]:9000/in/abc", "https://[::1]:9000/in/****"),
        ("hunter2", "****"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


@pytest.mark.parametrize(
    ("secret", "masked"),
    [
        (SECRET, "whsec_****"),
        ("xoxb-1234-5678-abcdefgh", "xoxb-****"),
        ("0123456789abcdefXYZ", "0123****"),
        ("short-secret", "****"),
        ("", ""),
    ],
)
def test_mask_secret_reveals_at_most_four_characters(secret: str, masked: str) -> None:
    assert mask_secret(secret) == masked


@dataclass(frozen=True)
class Target:
    name: str
    url: str


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(SecretFilter([SLACK, SECRET]))
    logger = logging.getLogger("feedbot.tests.masking")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


@pytest.mark.parametrize(
    ("emit", "expected"),
    [
        (
            lambda log: log.info("posting to %s", SLACK),
            "posting to https://hooks.slack.com/services/T00…/****",
        ),
        (
            lambda log: log.info(f"posting to {SLACK}"),  # noqa: G004
            "posting to https://hooks.slack.com/services/T00…/****",
        ),
        (
            lambda log: log.info("target %r", Target("ops", SLACK)),
            "url='https://hooks.slack.com/services/T00…/****'",
        ),
        (
            lambda log: log.info("%(url)s failed", {"url": SLACK}),
            "https://hooks.slack.com/services/T00…/****",
        ),
        (lambda log: log.warning("secret %s in use", SECRET), "secret whsec_**** in use"),
        (
            lambda log: log.info("unknown %s", DISCORD),
            "unknown https://discord.com/api/webhooks/1234…/****",
        ),
        (lambda log: log.info("status %d", 429), "status 429"),
    ],
)
def test_filter_masks_what_the_handler_emits(
    captured: tuple[logging.Logger, io.StringIO], emit: object, expected: str
) -> None:
    logger, stream = captured
    emit(logger)  # type: ignore[operator]
    out = stream.getvalue()
    assert expected in out
    for raw in ("XXXXXXXXXXXXXXXXXXXXXXXX", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "abcDEFghiJKL"):
        assert raw not in out


@pytest.mark.parametrize("url", [SLACK, DISCORD, "https://example.com/hook/abc?sig=1"])
def test_masking_twice_changes_nothing(url: str) -> None:
    assert mask_url(mask_url(url)) == mask_url(url)


def test_filter_masks_exception_text_quoting_only_the_path(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    try:
        raise ConnectionError(
            "HTTPSConnectionPool(host='hooks.slack.com', port=443): Max retries exceeded "
            "with url: /services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"
        )
    except ConnectionError:
        logger.exception("delivery failed")
    out = stream.getvalue()
    assert "delivery failed" in out
    assert "with url: /services/T00…/****" in out
    assert "XXXXXXXXXXXXXXXXXXXXXXXX" not in out
