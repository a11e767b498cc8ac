"""Lock a session's row and update it, each in one written-out statement; bound the wait for the lock.

They run on every change to a basket, and the ORM spent longer building them
than PostgreSQL takes to run them. The store's ``locked()`` is their one caller.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from django.contrib.sessions.backends.base import UpdateError
from django.db import DatabaseError, OperationalError, connections
from django.db.models import Model
from django.utils import timezone

# PostgreSQL's lock_not_available: the statement waited longer than lock_timeout.
LOCK_NOT_AVAILABLE = "55P03"


class SessionBusy(Exception):
    """A change to this session was refused: its lock stayed busy too long. Nothing was changed; try again."""


# This process's changes in progress, per session (storage key): the waiters for one
# session's lock are bounded, so one hot session cannot hold every worker thread.
_in_progress: dict[str, int] = {}
_in_progress_lock = threading.Lock()


@contextmanager
def admitted(key: str, *, limit: int) -> Iterator[None]:
    """Let the block change session ``key`` if fewer than ``limit`` changes to it run here; else SessionBusy."""
    with _in_progress_lock:
        if _in_progress.get(key, 0) >= limit:
            raise SessionBusy(f"{limit} change(s) to this session already wait for its lock in this process")
        _in_progress[key] = _in_progress.get(key, 0) + 1
    try:
        yield
    finally:
        with _in_progress_lock:
            left = _in_progress.pop(key) - 1
            if left:
                _in_progress[key] = left


def lock_row(alias: str, model: type[Model], keys: list[str]) -> str | None:
    """Lock the live session row stored under ``keys[0]`` and return its data (the durable copy), or None.

    ``keys[1:]`` are the keys it may still be stored under from before a
    SECRET_KEY rotation: a row found under one of those is moved to
    ``keys[0]``, under the same lock. On SQLite, which has no ``FOR UPDATE``,
    the transaction itself is the lock (``transaction_mode`` IMMEDIATE in the
    settings).
    """
    connection = connections[alias]
    table, pk = connection.ops.quote_name(model._meta.db_table), connection.ops.quote_name(model._meta.pk.column)
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    where = f"{pk} = %s" if len(keys) == 1 else f"{pk} IN ({', '.join(['%s'] * len(keys))})"
    with connection.cursor() as cursor:
        try:
            cursor.execute(
                f"SELECT {pk}, session_data FROM {table} WHERE {where} AND expire_date > %s{lock}",
                [*keys, connection.ops.adapt_datetimefield_value(timezone.now())],
            )
        except OperationalError as error:
            # lock_timeout (the database settings) bounds the wait across processes.
            if getattr(error.__cause__, "sqlstate", None) == LOCK_NOT_AVAILABLE:
                raise SessionBusy("the session's row lock stayed busy past lock_timeout") from error
            raise
        rows = dict(cursor.fetchall())
        found = next((key for key in keys if key in rows), None)
        if found is not None and found != keys[0]:
            cursor.execute(f"UPDATE {table} SET {pk} = %s WHERE {pk} = %s", [keys[0], found])
    return rows[found] if found is not None else None


@lru_cache(maxsize=8)
def _update_statement(model: type[Model], alias: str) -> tuple[str, list]:
    """The UPDATE of every column of a session row by its key, and the fields it sets, in order."""
    quote = connections[alias].ops.quote_name
    meta = model._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    assignments = ", ".join(f"{quote(f.column)} = %s" for f in fields)
    return f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s", fields


def update_locked_row(alias: str, obj: Model) -> None:
    """Write every column of a row this transaction has locked, or raise UpdateError.

    The row exists and is locked, so neither the savepoint Django's save opens
    (to recover from a failed insert) nor the rest of Model.save is needed.
    Values are prepared by the fields themselves, as Model.save would.
    """
    connection = connections[alias]
    sql, fields = _update_statement(type(obj), alias)
    values = [f.get_db_prep_save(f.pre_save(obj, False), connection) for f in fields]
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, [*values, obj._meta.pk.get_db_prep_value(obj.pk, connection)])
            updated = cursor.rowcount
    except DatabaseError as error:
        raise UpdateError from error
    if updated != 1:
        raise UpdateError
