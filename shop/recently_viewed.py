"""Remember the last products a visitor opened, in their session."""

from __future__ import annotations

from django.contrib.sessions.backends.base import SessionBase

from durable_sessions.backends.cached_db import locked
from durable_sessions.locking import SessionBusy

RECENTLY_VIEWED_SESSION_KEY = "recently_viewed"
RECENTLY_VIEWED_MAX = 8


def recently_viewed_ids(session: SessionBase) -> list[int]:
    """Return the ids of recently viewed products, newest first."""
    value = session.get(RECENTLY_VIEWED_SESSION_KEY, [])
    return [i for i in value if isinstance(i, int)] if isinstance(value, list) else []


def recently_viewed_add(session: SessionBase, *, product_id: int) -> None:
    """Put ``product_id`` first in the visitor's recently viewed list."""
    if recently_viewed_ids(session)[:1] == [product_id]:
        return  # Reopening the newest product changes nothing: no write.
    try:
        with locked(session):
            ids = [product_id, *(i for i in recently_viewed_ids(session) if i != product_id)]
            session[RECENTLY_VIEWED_SESSION_KEY] = ids[:RECENTLY_VIEWED_MAX]
    except SessionBusy:
        pass  # other changes to this session queue for its lock; the list can miss one product
