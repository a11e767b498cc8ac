"""End sessions everywhere: PostgreSQL first, then Redis; and record why."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from durable_sessions import metrics
from durable_sessions.cache.backend import session_cache, tombstones_write
from durable_sessions.models import SessionEnd, UserSession

END_BATCH_SIZE = 500
# How long the sessions overview can look back at ended sessions.
ENDS_KEPT_FOR = timedelta(days=7)


def sessions_end(session_keys: Iterable[str], *, reason: str) -> int:
    """End sessions everywhere: delete them from PostgreSQL, then leave tombstones in Redis.

    The tombstones follow each batch's commit at once, so the next request with
    any of these cookies is anonymous on every instance. Each ended session is
    recorded with ``reason``. Returns how many rows went.
    """
    keys = list(dict.fromkeys(session_keys))
    cache = session_cache()
    removed = 0
    for start in range(0, len(keys), END_BATCH_SIZE):
        batch = keys[start : start + END_BATCH_SIZE]
        with transaction.atomic():
            rows = UserSession.objects.filter(session_key__in=batch)
            # Locked: a concurrent end of the same rows waits, then finds them gone and records nothing.
            ended = list(rows.select_for_update().values_list("created_at", "authenticated_at"))
            removed += rows.delete()[0]
            session_ends_record(reason=reason, sessions=ended)
            transaction.on_commit(lambda batch=batch: tombstones_write(batch, cache=cache))
    return removed


def session_ends_record(*, reason: str, sessions: list[tuple[datetime | None, datetime | None]]) -> None:
    """Record sessions ended for ``reason``, each by (when it began, when it was signed in to)."""
    if not sessions:
        return
    now = timezone.now()
    SessionEnd.objects.bulk_create(
        [SessionEnd(reason=reason, ended_at=now, created_at=c, authenticated_at=a) for c, a in sessions]
    )
    transaction.on_commit(lambda: metrics.sessions_ended.labels(reason).inc(len(sessions)))


def session_ends_prune() -> int:
    """Forget ended sessions older than the overview looks back."""
    return SessionEnd.objects.filter(ended_at__lt=timezone.now() - ENDS_KEPT_FOR).delete()[0]
