from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from feedbot.clock import utcnow
from feedbot.errors import NotifyError
from feedbot.notify.signing import generate_secret, sign

SECRET = "whsec_dGhpcyBpcyBmZWVkYm90J3MgdGVzdCBrZXkgMDEyMzQ="  # made up for these tests


@pytest.fixture(scope="module")
def vector(shared_dir: Path) -> dict[str, Any]:
    path = shared_dir / "standards" / "standard-webhooks-vectors.json"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    vectors: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["vectors"]
    return vectors[0]


def test_official_vector(vector: dict[str, Any]) -> None:
    headers = sign(
        vector["secret"], vector["msg_id"], vector["timestamp"], vector["payload"].encode()
    )
    assert headers == {
        "webhook-id": vector["msg_id"],
        "webhook-timestamp": str(vector["timestamp"]),
        "webhook-signature": vector["expected_signature"],
    }


def test_official_vector_without_prefix(vector: dict[str, Any]) -> None:
    bare = vector["secret"].removeprefix("whsec_")
    headers = sign(bare, vector["msg_id"], vector["timestamp"], vector["payload"].encode())
    assert headers["webhook-signature"] == vector["expected_signature"]


def test_official_vector_other_bodies_differ(vector: dict[str, Any]) -> None:
    for body in vector["verify_must_fail_with"]:
        headers = sign(vector["secret"], vector["msg_id"], vector["timestamp"], body.encode())
        assert headers["webhook-signature"] != vector["expected_signature"]


@pytest.mark.parametrize("secret", [SECRET, generate_secret()])
def test_reference_library_verifies_our_signature(secret: str) -> None:
    body = json.dumps({"type": "article.new", "version": 1, "data": {"title": "阿里巴巴"}}).encode()
    headers = sign(secret, "dlv_01HZX", int(utcnow().timestamp()), body)
    assert Webhook(secret).verify(body, headers)["data"]["title"] == "阿里巴巴"
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"article.new", b"article.old"), headers)


@pytest.mark.parametrize(
    ("secret", "msg_id", "message"),
    [
        (SECRET, "dlv.1", "must not contain"),
        ("whsec_not base64!", "dlv_1", "not base64"),
        ("whsec_", "dlv_1", "empty"),
    ],
)
def test_bad_input_is_refused_without_leaking_the_secret(
    secret: str, msg_id: str, message: str
) -> None:
    with pytest.raises(NotifyError, match=message) as caught:
        sign(secret, msg_id, 1, b"{}")
    assert "base64!" not in str(caught.value)
