"""CloudStack request signatures (CLOUDSTACK_API.md section 2), byte for byte what ApiServer verifies.

Every parameter except ``signature``, sorted by name (plain, case-sensitive order), each value
encoded like Java's ``URLEncoder`` with ``+`` turned into ``%20``, joined with ``&``, the whole
string lowercased, HMAC-SHA1 with the secret key, standard Base64.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import string
from collections.abc import Mapping
from datetime import UTC, datetime

# Java URLEncoder leaves these as they are; everything else is %XX of its UTF-8 bytes.
_JAVA_SAFE = frozenset((string.ascii_letters + string.digits + ".-*_").encode())
# Python's quote(v, safe="*") (what cs and libcloud send) also leaves "~" alone.
_PYTHON_SAFE = _JAVA_SAFE | {ord("~")}


def _encode(value: str, safe: frozenset[int]) -> str:
    return "".join(chr(b) if b in safe else f"%{b:02X}" for b in value.encode())


def java_encode(value: str) -> str:
    return _encode(value, _JAVA_SAFE)


def canonical(params: Mapping[str, str], *, python_style: bool = False) -> str:
    """The string CloudStack signs: ``name=encoded-value`` sorted by name, joined, lowercased."""
    safe = _PYTHON_SAFE if python_style else _JAVA_SAFE
    pairs = sorted((k, v) for k, v in params.items() if k.lower() != "signature")
    return "&".join(f"{k}={_encode(v, safe)}" for k, v in pairs).lower()


def sign(params: Mapping[str, str], secret: str, *, python_style: bool = False) -> str:
    digest = hmac.new(
        secret.encode(), canonical(params, python_style=python_style).encode(), hashlib.sha1
    ).digest()
    return base64.b64encode(digest).decode()


def signature_matches(params: Mapping[str, str], secret: str, signature: str) -> bool:
    """Constant-time check against the Java-style string; the Python-style one (which differs
    only for ``~``) is accepted too, as a gateway may."""
    if hmac.compare_digest(sign(params, secret).encode(), signature.encode()):
        return True
    if any("~" in v for v in params.values()):
        return hmac.compare_digest(sign(params, secret, python_style=True).encode(), signature.encode())
    return False


def parse_expires(value: str) -> datetime | None:
    """``yyyy-MM-dd'T'HH:mm:ssZ`` (+0000), ISO offsets, ``Z``, fractions; None when unreadable."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def expired(params: Mapping[str, str], now: datetime | None = None) -> bool:
    """For ``signatureVersion=3`` only: ``expires`` must be present, readable and not past.
    Names are matched case-insensitively (cloudmonkey sends ``signatureversion``)."""
    lowered = {k.lower(): v for k, v in params.items()}
    if lowered.get("signatureversion") != "3":
        return False
    moment = parse_expires(lowered.get("expires", ""))
    return moment is None or moment < (now or datetime.now(UTC))
