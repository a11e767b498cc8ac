"""Cached, database-backed sessions that record whom they belong to."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.base import UpdateError
from django.contrib.sessions.backends.cached_db import KEY_PREFIX
from django.contrib.sessions.backends.cached_db import SessionStore as CachedDbStore
from django.contrib.sessions.backends.db import SessionStore as DbStore
from django.core.cache import caches
from django.db import DatabaseError, connections, router, transaction
from django.utils import timezone

from accounts.models import UserSession

# Stamps kept in the session data itself, so the cached copy carries them.
CREATED_AT_KEY = "_created_at"
LAST_ACTIVITY_KEY = "_last_activity"
AUTHENTICATED_AT_KEY = "_authenticated_at"
IP_ADDRESS_KEY = "_ip"
USER_AGENT_KEY = "_user_agent"
USER_AGENT_MAX_LENGTH = 400
END_BATCH_SIZE = 500
# What Redis holds for an ended session, for as long as its cookie could live:
# a read takes it for "no session" without asking PostgreSQL, and neither a
# late write nor a re-cache after a miss (ADD) can put the session back.
ENDED = {"_ended": True}


def is_ended(data: object) -> bool:
    return isinstance(data, dict) and data.get("_ended") is True


@dataclass(frozen=True)
class Client:
    """Who is making the request, as far as the session is concerned."""

    ip_address: str | None = None
    user_agent: str = ""


def _datetime(stamp: object) -> datetime | None:
    return datetime.fromtimestamp(stamp, tz=UTC) if isinstance(stamp, int) else None


def _user_id(data: dict) -> int | None:
    value = data.get(SESSION_KEY)
    return int(value) if isinstance(value, str | int) and str(value).isdigit() else None


def is_stale(data: dict, *, now: int | None = None) -> bool:
    """Return whether the session ran past its idle timeout or absolute lifetime."""
    now = int(time.time()) if now is None else now
    last_activity = data.get(LAST_ACTIVITY_KEY)
    if isinstance(last_activity, int) and now - last_activity > settings.SESSION_IDLE_TIMEOUT:
        return True
    authenticated_at = data.get(AUTHENTICATED_AT_KEY)
    return (
        SESSION_KEY in data
        and isinstance(authenticated_at, int)
        and now - authenticated_at > settings.SESSION_ABSOLUTE_LIFETIME
    )


def sessions_end(session_keys: Iterable[str]) -> int:
    """End sessions everywhere: delete them from PostgreSQL, then evict them from Redis.

    The cache eviction follows the delete at once, so the next request with any
    of these cookies is anonymous on every instance. Returns how many rows went.
    """
    keys = list(dict.fromkeys(session_keys))
    cache = caches[settings.SESSION_CACHE_ALIAS]
    removed = 0
    for start in range(0, len(keys), END_BATCH_SIZE):
        batch = keys[start : start + END_BATCH_SIZE]
        with transaction.atomic():
            removed += UserSession.objects.filter(session_key__in=batch).delete()[0]
            transaction.on_commit(
                lambda batch=batch: cache.set_many(
                    {KEY_PREFIX + key: ENDED for key in batch}, settings.SESSION_COOKIE_AGE
                )
            )
    return removed


@lru_cache(maxsize=8)
def _locked_update(model, alias: str) -> tuple[str, list]:
    """The UPDATE of every column of a session row by its key, and the fields it sets, in order."""
    quote = connections[alias].ops.quote_name
    meta = model._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    assignments = ", ".join(f"{quote(f.column)} = %s" for f in fields)
    return f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s", fields


class SessionStore(CachedDbStore):
    """Redis first, PostgreSQL always; every save records user, client and activity.

    Enforces an idle timeout (sliding: the activity stamp, written at most once
    per SESSION_ACTIVITY_INTERVAL, extends the expiry) and an absolute lifetime
    since sign-in, from stamps in the session data: a warm request reads one key
    from Redis and writes nothing.
    """

    client: Client = Client()

    @classmethod
    def get_model_class(cls):
        return UserSession

    # --- Loading: Redis, else PostgreSQL; a stale session ends here -------------------
    def load(self):
        data = self._cache.get(self.cache_key)
        if is_ended(data):
            self._session_key = None
            return {}
        if data is None:
            row = self._get_session_from_db()
            data = self.decode(row.session_data) if row else {}
            if row:
                # ADD, not SET: a writer that saved meanwhile put a newer copy there.
                self._cache.add(self.cache_key, data, self.get_expiry_age(expiry=row.expire_date))
        if data and is_stale(data):
            self.delete()
            self._session_key = None
            return {}
        return data

    async def aload(self):
        data = await self._cache.aget(await self.acache_key())
        if is_ended(data):
            self._session_key = None
            return {}
        if data is None:
            row = await self._aget_session_from_db()
            data = self.decode(row.session_data) if row else {}
            if row:
                expiry = await self.aget_expiry_age(expiry=row.expire_date)
                await self._cache.aadd(await self.acache_key(), data, expiry)
        if data and is_stale(data):
            await self.adelete()
            self._session_key = None
            return {}
        return data

    # --- Writing: PostgreSQL first, Redis once the transaction has committed ----------
    # Writing Redis inside the transaction would let readers see data that a
    # rollback then takes back; the session cache journals any write it misses.
    # Under session_update the row lock is held until commit: writing Redis at
    # once lets that lock order this write before any later end of the session
    # (whose tombstone is written after its own commit). session_update evicts
    # the key if its transaction does not commit.
    write_cache_now = False
    written_now: list[str] = []

    def save(self, must_create=False):
        if self.session_key is None:
            return self.create()  # which saves, with must_create
        if self.write_cache_now and not must_create:
            self._update_locked_row()
        else:
            DbStore.save(self, must_create)
        key, data, age = self.cache_key, dict(self._session), self.get_expiry_age()
        if self.write_cache_now:
            self._cache.set(key, data, age)
            self.written_now = [*self.written_now, key]
        else:
            transaction.on_commit(lambda: self._cache.set(key, data, age))

    def _update_locked_row(self) -> None:
        """Update the row session_update has locked: one written-out UPDATE.

        The row exists and this transaction holds its lock, so neither the
        savepoint Django's save opens (to recover from a failed insert) nor
        the rest of Model.save is needed on every change to a basket. Values
        are prepared by the fields themselves, as Model.save would.
        """
        obj = self.create_model_instance(self._get_session())
        connection = connections[router.db_for_write(self.model, instance=obj)]
        sql, fields = _locked_update(type(obj), connection.alias)
        values = [f.get_db_prep_save(f.pre_save(obj, False), connection) for f in fields]
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, [*values, obj._meta.pk.get_db_prep_value(obj.pk, connection)])
                updated = cursor.rowcount
        except DatabaseError as error:
            raise UpdateError from error
        if updated != 1:
            raise UpdateError

    def delete(self, session_key=None):
        session_key = session_key or self.session_key
        if session_key is None:
            return
        DbStore.delete(self, session_key)
        key = self.cache_key_prefix + session_key
        transaction.on_commit(lambda: self._cache.set(key, ENDED, settings.SESSION_COOKIE_AGE))

    def exists(self, session_key):
        cached = self._cache.get(self.cache_key_prefix + session_key)
        if is_ended(cached):
            return False  # ended: whatever a row might say, it is gone
        return cached is not None or DbStore.exists(self, session_key)

    # The async variants take the same path: Redis after commit, through the guard.
    async def asave(self, must_create=False):
        await sync_to_async(self.save)(must_create)

    async def adelete(self, session_key=None):
        await sync_to_async(self.delete)(session_key)

    # --- Saving: stamps into the data, columns from the stamps ------------------------
    def _stamp(self, data: dict) -> None:
        now = int(time.time())
        data.setdefault(CREATED_AT_KEY, now)
        data.setdefault(LAST_ACTIVITY_KEY, now)
        if SESSION_KEY in data:
            data.setdefault(AUTHENTICATED_AT_KEY, now)
        else:
            data.pop(AUTHENTICATED_AT_KEY, None)
        if self.client.ip_address and IP_ADDRESS_KEY not in data:
            data[IP_ADDRESS_KEY] = self.client.ip_address
        if self.client.user_agent and USER_AGENT_KEY not in data:
            data[USER_AGENT_KEY] = self.client.user_agent[:USER_AGENT_MAX_LENGTH]

    def _with_columns(self, obj: UserSession, data: dict) -> UserSession:
        obj.user_id = _user_id(data)
        obj.ip_address = data.get(IP_ADDRESS_KEY)
        obj.user_agent = data.get(USER_AGENT_KEY, "")
        obj.created_at = _datetime(data.get(CREATED_AT_KEY))
        obj.last_activity = _datetime(data.get(LAST_ACTIVITY_KEY))
        obj.authenticated_at = _datetime(data.get(AUTHENTICATED_AT_KEY))
        return obj

    def create_model_instance(self, data):
        self._stamp(data)
        return self._with_columns(super().create_model_instance(data), data)

    async def acreate_model_instance(self, data):
        self._stamp(data)
        return self._with_columns(await super().acreate_model_instance(data), data)

    # --- Activity -------------------------------------------------------------------
    def needs_touch(self) -> bool:
        """Return whether the activity stamp is older than the write interval."""
        last_activity = self.get(LAST_ACTIVITY_KEY)
        if not isinstance(last_activity, int):
            return False  # not saved yet: the first save stamps it
        return int(time.time()) - last_activity >= settings.SESSION_ACTIVITY_INTERVAL

    def touch(self) -> None:
        """Record activity now, from this client; the caller saves."""
        self[LAST_ACTIVITY_KEY] = int(time.time())
        if self.client.ip_address:
            self[IP_ADDRESS_KEY] = self.client.ip_address
        if self.client.user_agent:
            self[USER_AGENT_KEY] = self.client.user_agent[:USER_AGENT_MAX_LENGTH]

    # --- Housekeeping -------------------------------------------------------------------
    @classmethod
    def expired_keys(cls) -> list[str]:
        """Return the keys of sessions past their expiry or absolute lifetime."""
        now = timezone.now()
        absolute = now - timedelta(seconds=settings.SESSION_ABSOLUTE_LIFETIME)
        model = cls.get_model_class()
        expired = model.objects.filter(expire_date__lt=now) | model.objects.filter(authenticated_at__lt=absolute)
        return list(expired.values_list("session_key", flat=True))

    @classmethod
    def clear_expired(cls):
        sessions_end(cls.expired_keys())

    @classmethod
    async def aclear_expired(cls):
        await sync_to_async(cls.clear_expired)()
