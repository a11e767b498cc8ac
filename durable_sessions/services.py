"""End sessions everywhere: PostgreSQL first, then Redis."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from durable_sessions.cache.backend import session_cache, tombstones_write
from durable_sessions.models import UserSession

END_BATCH_SIZE = 500


def sessions_end(session_keys: Iterable[str]) -> int:
    """End sessions everywhere: delete them from PostgreSQL, then leave tombstones in Redis.

    The tombstones follow each batch's commit at once, so the next request with
    any of these cookies is anonymous on every instance. Returns how many rows went.
    """
    keys = list(dict.fromkeys(session_keys))
    cache = session_cache()
    removed = 0
    for start in range(0, len(keys), END_BATCH_SIZE):
        batch = keys[start : start + END_BATCH_SIZE]
        with transaction.atomic():
            removed += UserSession.objects.filter(session_key__in=batch).delete()[0]
            transaction.on_commit(lambda batch=batch: tombstones_write(batch, cache=cache))
    return removed
