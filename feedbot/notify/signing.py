"""Standard Webhooks signing (symmetric ``v1``: HMAC-SHA256).

The signed content is ``{msg_id}.{timestamp}.{body}`` over the exact bytes sent; the
key is the base64-decoded part of a ``whsec_`` secret (the prefix is optional).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from feedbot.errors import NotifyError
from feedbot.notify.secrets import mask_secret

PREFIX = "whsec_"
SECRET_BYTES = 32  # the spec allows 24 to 64


def _key(secret: str) -> bytes:
    encoded = secret.removeprefix(PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NotifyError("secret is not base64", resource=mask_secret(secret)) from exc
    if not key:
        raise NotifyError("secret is empty", resource=mask_secret(secret))
    return key


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256>`` of ``{msg_id}.{timestamp}.{body}``."""
    if "." in msg_id:
        raise NotifyError("message id must not contain '.'", resource=msg_id)
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for one delivery of *body*."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, msg_id, timestamp, body),
    }


def generate_secret() -> str:
    """A new random ``whsec_`` secret of 32 bytes."""
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")
