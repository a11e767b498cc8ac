"""Change a session without losing a concurrent change to it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.db import connections, router, transaction
from django.utils import timezone


@contextmanager
def session_update(session: SessionBase) -> Iterator[SessionBase]:
    """Reload ``session`` under its row lock, let the block change it, save before unlocking.

    Two requests with one cookie can run at once on different instances. Each
    loads the session when it starts, so with plain Django the later save
    overwrites the earlier one and a basket line is lost. Here a change:

    1. opens a transaction and locks the session's row in the database
       (``SELECT ... FOR UPDATE``; on SQLite the transaction itself is the lock,
       see ``transaction_mode`` in the settings);
    2. reloads the data from that row, the durable copy every save writes;
    3. lets the block change it, then saves it (database, then Redis) and
       commits, which releases the lock.

    Requests changing the same session queue on the row lock; requests that only
    read never wait. The lock lives where the durable copy lives, so it needs no
    fallback when Redis is down and two instances can never disagree about who
    holds it. If the block raises, nothing is saved.
    """
    if not settings.SESSION_UPDATE_LOCK or not hasattr(session, "model"):
        # Unlocked: only to measure what the lock prevents, or an engine with no
        # row to lock (Django's cache-only engine). Changes may then be lost.
        yield session
        return
    locked = False
    using = router.db_for_write(session.model)
    try:
        with transaction.atomic(using=using):
            stored = None
            if session.session_key:
                stored = _lock_row(connections[using], session.model, session.session_key)
                if stored is None:
                    # Ended meanwhile (revoked, expired): what this request loaded
                    # must not come back, from this request or from Redis; the
                    # change starts a new, empty session.
                    _mark_ended(session, session.session_key)
                    session.clear()
                    session._session_key = None
            if stored is not None:
                # Every save in the block (a sign-in's new key too) writes Redis at
                # once and in order, while the lock orders it against the end of
                # the session; they are evicted if the block does not commit.
                locked, session.write_cache_now, session.written_now = True, True, []
            if stored is not None and not session.modified:
                session._session_cache = session.decode(stored)
            # With pending changes (a sign-in earlier in this request, say) the
            # request's own copy is kept and saved under the lock. Without a stored
            # row (first visit) no other request can hold this session, and the
            # middleware creates it after the view.
            snapshot, was_modified = dict(session.items()), session.modified
            try:
                yield session
            except BaseException:
                session._session_cache, session.modified = snapshot, was_modified
                raise
            if stored is not None and session.modified:
                session.save()
                # Saved while locked: the middleware must not write this request's
                # copy again later, over a change another request made meanwhile;
                # it only renews the cookie.
                session.modified = False
                session.saved_under_lock = True
    except BaseException:
        if locked:
            for key in session.written_now:
                session._cache.delete(key)  # written under the lock, never committed
        raise
    finally:
        if locked:
            session.write_cache_now = False


def _mark_ended(session: SessionBase, session_key: str) -> None:
    from accounts.sessions import ENDED

    cache = getattr(session, "_cache", None)
    if cache is not None and hasattr(session, "write_cache_now"):  # only the shop's store knows tombstones
        cache.set(session.cache_key_prefix + session_key, ENDED, settings.SESSION_COOKIE_AGE)


def _lock_row(connection, model, session_key: str) -> str | None:
    """Lock the live session row and return its data (the durable copy), or None.

    One statement, written out: it runs on every change to a basket, and the
    ORM spent longer building it than PostgreSQL takes to run it.
    """
    table = connection.ops.quote_name(model._meta.db_table)
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT session_data FROM {table} WHERE session_key = %s AND expire_date > %s{lock}",
            [session_key, connection.ops.adapt_datetimefield_value(timezone.now())],
        )
        row = cursor.fetchone()
    return row[0] if row else None
