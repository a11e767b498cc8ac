"""Keep cookies out of storage and Redis entries honest: keyed hashes and MACs from SECRET_KEY.

A session's cookie is a password, so nothing stored holds it: its row, its
Redis key, the journal, the admin and the logs know it only by its *storage
key*, a keyed hash of the cookie (as Rack does since CVE-2019-16782; Django
ticket #21076). Whoever reads them cannot sign in with what they read.

Redis is a fast copy that may be tampered with: each session entry there is
sealed with a MAC over its storage key and JSON, so an entry changed in Redis
(a forged user id, a basket) or moved under another session's key is refused
and the session is read from PostgreSQL instead.

Both are keyed from SECRET_KEY and accept SECRET_KEY_FALLBACKS, so rotating
the key logs nobody out. Other caches of the shop seal their entries the same
way, under a salt of their own.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.utils.crypto import constant_time_compare

logger = logging.getLogger(__name__)

STORAGE_KEY_SALT = "durable_sessions.storage_key"
ENTRY_SALT = "durable_sessions.cache_entry"
# 160 bits of HMAC-SHA256: the length of Django's session key column.
STORAGE_KEY_LENGTH = 40
_SEPARATOR = ":"


def _secrets() -> list[str]:
    return [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]


@lru_cache(maxsize=32)
def _derived(salt: str, secret: str) -> bytes:
    # What Django's salted_hmac derives on every call; once per salt and secret here,
    # as the store calls it on every request.
    return hashlib.sha256((salt + secret).encode()).digest()


def _hmac(salt: str, value: str, secret: str | None) -> str:
    """Return Django's salted_hmac(salt, value, secret, algorithm="sha256"), hex."""
    key = _derived(salt, settings.SECRET_KEY if secret is None else secret)
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def storage_key(session_key: str, *, secret: str | None = None) -> str:
    """Return the key a session is stored under: a keyed hash of its cookie value."""
    return _hmac(STORAGE_KEY_SALT, session_key, secret)[:STORAGE_KEY_LENGTH]


def storage_keys(session_key: str) -> list[str]:
    """Return the storage key under SECRET_KEY, then under each fallback (a session stored before a rotation)."""
    return [storage_key(session_key, secret=secret) for secret in _secrets()]


def _mac(key: str, text: str, secret: str | None, salt: str) -> str:
    return _hmac(salt, f"{key}{_SEPARATOR}{text}", secret)


def seal(key: str, payload: Any, *, salt: str = ENTRY_SALT) -> str:
    """Return what Redis holds under ``key`` for ``payload``: its MAC and its JSON, as one string."""
    text = json.dumps(payload, separators=(",", ":"))
    return f"{_mac(key, text, None, salt)}{_SEPARATOR}{text}"


class Forged(ValueError):
    """A session cache entry whose MAC does not match: written by someone without SECRET_KEY."""


def unseal(key: str, value: object, *, salt: str = ENTRY_SALT) -> Any:
    """Return the payload a sealed entry holds; None for no entry; raise Forged for one that fails its MAC."""
    if value is None:
        return None
    if isinstance(value, str):
        mac, _, text = value.partition(_SEPARATOR)
        if text and any(constant_time_compare(mac, _mac(key, text, secret, salt)) for secret in _secrets()):
            return json.loads(text)
    logger.warning("cache entry %s failed its MAC: ignored, read from PostgreSQL instead", key)
    raise Forged(key)
