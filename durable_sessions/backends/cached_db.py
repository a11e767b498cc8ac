"""Implement sessions read from Redis first, written to PostgreSQL always, and changed under a row lock."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import timedelta

from asgiref.sync import sync_to_async
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.base import SessionBase
from django.contrib.sessions.backends.cached_db import SessionStore as CachedDbStore
from django.contrib.sessions.backends.db import SessionStore as DbStore
from django.db import router, transaction
from django.utils import timezone

from durable_sessions import metrics
from durable_sessions import stamps as st
from durable_sessions.cache.backend import tombstones_write
from durable_sessions.conf import USER_AGENT_MAX_LENGTH, app_settings
from durable_sessions.locking import SessionBusy, admitted, lock_row, update_locked_row
from durable_sessions.sealing import Forged, seal, storage_key, storage_keys, unseal

# Django's own logger for sessions: a failed cache write is logged as its cached_db logs it.
logger = logging.getLogger("django.contrib.sessions")


@dataclass(frozen=True)
class Client:
    """Who is making the request, as far as the session is concerned."""

    ip_address: str | None = None
    user_agent: str = ""


class SessionStore(CachedDbStore):
    """Redis first, PostgreSQL always; every save records user, client and activity.

    Enforces an idle timeout (sliding: the activity stamp, written at most once
    per ``DURABLE_SESSIONS_ACTIVITY_INTERVAL``, extends the expiry) and an
    absolute lifetime since sign-in, from stamps stored with the data (see
    ``durable_sessions.stamps``): a warm request reads one key from Redis and
    writes nothing. The stamps are not session keys: ``items()`` shows only
    what apps wrote.

    **Changing a session** that another request may change at the same time
    (another instance, the same cookie) is done in ``with session.locked():``.
    The block runs on the durable copy, reloaded under the row's lock, and its
    changes are saved before the lock is released, so concurrent changes never
    overwrite each other. Reads never wait.

    Writes go to PostgreSQL, then Redis: after the commit, or, under the lock,
    at once (evicted again if the transaction does not commit), so the lock
    orders them before any end of the session. An ended session leaves a
    tombstone in Redis.

    ``session_key`` is the cookie's value, and is never stored: the row and the
    Redis entry are keyed by ``storage_key()``, a keyed hash of it, and Redis
    entries are sealed with a MAC (see ``durable_sessions.sealing``).
    """

    def __init__(
        self, session_key: str | None = None, *, client: Client | None = None, moves_cookie: bool = False
    ) -> None:
        super().__init__(session_key)
        self.client = client or Client()
        # The cookie came under its previous name (DURABLE_SESSIONS_PREVIOUS_COOKIE_NAME): the
        # response sends it under the current one.
        self.moves_cookie = moves_cookie
        self._stamps: dict = {}
        # Under locked(): cache keys written before the commit, evicted if it fails.
        self._under_lock = False
        self._written_under_lock: list[str] = []
        # Saved by locked(): the middleware's save at the end of the request
        # must not write this request's copy again (over another request's
        # change made since); it only sends the cookie.
        self._saved_under_lock = False
        # Whether load() found this session live: only then may an end seen
        # under the lock leave a tombstone (never for a made-up cookie).
        self._loaded_live = False
        self._storage: tuple[str, str] | None = None
        # Inside cycle_key(): the new key continues this session, it does not start one.
        self._cycling = False

    @classmethod
    def get_model_class(cls):
        # Avoids an INSTALLED_APPS check on import, as Django's db engine does.
        from durable_sessions.models import UserSession

        return UserSession

    # --- "modified": what apps changed, or saved already under the lock --------------------
    @property
    def modified(self) -> bool:
        return self._modified or self._saved_under_lock

    @modified.setter
    def modified(self, value: bool) -> None:
        self._modified = value

    _modified = False
    _saved_under_lock = False
    _under_lock = False

    # --- Keys: the cookie is never stored ---------------------------------------------------
    def storage_key(self) -> str:
        """Return the key this session is stored under (creating a session key if there is none)."""
        session_key = self._get_or_create_session_key()
        if self._storage is None or self._storage[0] != session_key:
            self._storage = (session_key, storage_key(session_key))
        return self._storage[1]

    @property
    def cache_key(self):
        return self.cache_key_prefix + self.storage_key()

    async def acache_key(self):
        return self.cache_key

    def _cache_get(self, key: str):
        try:
            return unseal(key, self._cache.get(key))
        except Forged:
            self._cache.delete(key)  # the next read re-caches the durable copy (ADD)
            return None
        except Exception:
            # Some backends raise on invalid cache keys: reset the session. See #17810.
            return None

    def _get_session_from_db(self):
        """Return the live row of this session, found by its storage key (under SECRET_KEY or a fallback)."""
        keys = storage_keys(self.session_key)
        lookup = {"session_key__in": keys} if len(keys) > 1 else {"session_key": keys[0]}
        found = {row.session_key: row for row in self.model.objects.filter(expire_date__gt=timezone.now(), **lookup)}
        row = next((found[key] for key in keys if key in found), None)
        if row is None:
            self._session_key = None
            return None
        if row.session_key != keys[0]:
            # Stored before SECRET_KEY was rotated: move it under the current key.
            moved = self.model.objects.filter(session_key=row.session_key).update(session_key=keys[0])
            row.session_key = keys[0]
            if not moved:  # another request moved it first
                return self.model.objects.filter(session_key=keys[0], expire_date__gt=timezone.now()).first()
        return row

    # --- Loading: Redis, else PostgreSQL; a stale session ends here ------------------------
    def load(self):
        key = self.cache_key
        payload = self._cache_get(key)
        if st.is_ended(payload):
            self._session_key = None
            return {}
        if payload is None:
            metrics.db_reads.inc()
            row = self._get_session_from_db()
            payload = self.decode(row.session_data) if row else {}
            if row:
                # ADD, not SET: a writer that saved meanwhile put a newer copy there.
                self._cache.add(key, seal(key, payload), self.get_expiry_age(expiry=row.expire_date))
        self._loaded_live = self._session_key is not None
        data, self._stamps = st.split(payload)
        # Stamps alone count: a session whose data was emptied still times out.
        reason = st.stale_reason(data, self._stamps) if payload else None
        if reason:
            with transaction.atomic(using=router.db_for_write(self.model)):
                if self.delete():  # only the request that removed the row records the end
                    self.record_end(reason)
            self._session_key, self._stamps = None, {}
            return {}
        return data

    async def aload(self):
        return await sync_to_async(self.load)()

    def exists(self, session_key):
        if not session_key:
            return False
        keys = storage_keys(session_key)
        cached = self._cache_get(self.cache_key_prefix + keys[0])
        if st.is_ended(cached):
            return False  # ended: whatever a row might say, it is gone
        return cached is not None or self.model.objects.filter(session_key__in=keys).exists()

    async def aexists(self, session_key):
        return await sync_to_async(self.exists)(session_key)

    # --- Writing: PostgreSQL first, then Redis ---------------------------------------------
    def create(self):
        super().create()
        if not self._cycling:
            transaction.on_commit(metrics.sessions_started.inc, using=router.db_for_write(self.model))

    def cycle_key(self):
        self._cycling = self.session_key is not None  # without a key, the new one does start a session
        try:
            super().cycle_key()
        finally:
            self._cycling = False

    def save(self, must_create=False):
        if self.session_key is None:
            return self.create()  # which saves, with must_create
        if self._saved_under_lock and not self._modified and not must_create:
            return  # saved under the lock, unchanged since
        if self._under_lock and not must_create:
            update_locked_row(router.db_for_write(self.model), self.create_model_instance(self._session))
        else:
            DbStore.save(self, must_create)
        key, payload, age = self.cache_key, st.join(self._session, self._stamps), self.get_expiry_age()
        if self._under_lock:
            self._cache_set(key, payload, age)
            self._written_under_lock.append(key)
        else:
            # Not inside the transaction: a rollback would take back what readers saw.
            transaction.on_commit(lambda: self._cache_set(key, payload, age), using=router.db_for_write(self.model))

    def _cache_set(self, key: str, payload: dict, age: int) -> None:
        try:
            self._cache.set(key, seal(key, payload), age)
        except Exception:
            # As Django's cached_db: the durable copy is saved; the next read re-caches it.
            logger.exception("Error saving to cache (%s)", self._cache)

    async def asave(self, must_create=False):
        await sync_to_async(self.save)(must_create)

    def delete(self, session_key=None):
        session_key = session_key or self.session_key
        if session_key is None:
            return
        keys = storage_keys(session_key)
        removed = self.model.objects.filter(session_key__in=keys).delete()[0]
        cache = self._cache
        transaction.on_commit(lambda: tombstones_write(keys[:1], cache=cache))
        return removed

    async def adelete(self, session_key=None):
        await sync_to_async(self.delete)(session_key)

    def flush(self):
        super().flush()
        self._stamps = {}

    async def aflush(self):
        await super().aflush()
        self._stamps = {}

    # --- Changing under the row lock -------------------------------------------------------
    @contextmanager
    def locked(self) -> Iterator[SessionStore]:
        """Reload this session under its row lock, let the block change it, save before unlocking.

        Two requests with one cookie can run at once on different instances.
        Each loads the session when it starts, so with plain Django the later
        save overwrites the earlier one and a basket line is lost. Here the
        block runs in a transaction holding the row's ``SELECT ... FOR
        UPDATE``, on the data that row holds (the durable copy every save
        writes); its changes are saved, to PostgreSQL and Redis, before the
        commit releases the lock. Requests changing one session queue on its
        row; the lock lives where the durable copy lives, so it needs no
        fallback when Redis is down. If the block raises, nothing is saved and
        the session is as it was.

        With changes pending from earlier in the request (a sign-in, say), they
        are kept and saved under the lock. A session without a row yet (a
        first visit) is not shared: the block runs unlocked and the middleware
        creates it. A session ended meanwhile (revoked, expired) does not come
        back: the block starts a new, empty one.
        ``DURABLE_SESSIONS_UPDATE_LOCK = False`` turns the lock off, only to
        measure what it prevents.
        """
        if not app_settings.UPDATE_LOCK:
            yield self
            return
        using = router.db_for_write(self.model)
        keys = storage_keys(self.session_key) if self.session_key else []
        try:
            with admitted(keys[0], limit=app_settings.LOCK_WAITERS) if keys else nullcontext():
                yield from self._locked(using, keys)
        except SessionBusy:
            metrics.lock_busy.inc()
            raise

    def _locked(self, using: str, keys: list[str]) -> Iterator[SessionStore]:
        """Run the block of ``locked()`` in a transaction holding the row's lock (a generator it delegates to)."""
        locked = False
        try:
            with transaction.atomic(using=using):
                waited = time.perf_counter()
                try:
                    stored = lock_row(using, self.model, keys) if keys else None
                finally:  # a wait that ended in SessionBusy counts too
                    if keys:
                        metrics.lock_wait.observe(time.perf_counter() - waited)
                if stored is None and self.session_key:
                    # Ended meanwhile, or never was (a made-up cookie): only a session
                    # someone may still read from Redis needs a tombstone.
                    if self._loaded_live or self._cache_get(self.cache_key) is not None:
                        tombstones_write(keys[:1], cache=self._cache)
                    self.clear()
                    self._session_key, self._stamps = None, {}
                if stored is not None:
                    locked = self._under_lock = True
                    self._written_under_lock = []
                    if not self._modified:
                        self._session_cache, self._stamps = st.split(self.decode(stored))
                snapshot = (dict(self._session), dict(self._stamps), self._modified)
                try:
                    yield self
                except BaseException:
                    self._session_cache, self._stamps, self._modified = snapshot
                    raise
                if stored is not None and self._modified:
                    self.save()
                    self._modified, self._saved_under_lock = False, True
        except BaseException:
            for key in self._written_under_lock if locked else ():
                self._cache.delete(key)  # written under the lock, never committed
            raise
        finally:
            if locked:
                self._under_lock, self._written_under_lock = False, []

    # --- Stamps: kept beside the data, copied to the columns ------------------------------
    def _stamp(self, data: dict) -> dict:
        stamps, now = self._stamps, int(time.time())
        stamps.setdefault(st.CREATED_AT, now)
        stamps.setdefault(st.LAST_ACTIVITY, now)
        if SESSION_KEY in data:
            stamps.setdefault(st.AUTHENTICATED_AT, now)
        else:
            stamps.pop(st.AUTHENTICATED_AT, None)
        if self.client.ip_address:
            stamps.setdefault(st.IP_ADDRESS, self.client.ip_address)
        if self.client.user_agent:
            stamps.setdefault(st.USER_AGENT, self.client.user_agent[:USER_AGENT_MAX_LENGTH])
        return stamps

    def create_model_instance(self, data):
        stamps = self._stamp(data)
        obj = super().create_model_instance(st.join(data, stamps))
        obj.session_key = self.storage_key()
        value = data.get(SESSION_KEY)
        obj.user_id = int(value) if isinstance(value, str | int) and str(value).isdigit() else None
        obj.ip_address = stamps.get(st.IP_ADDRESS)
        obj.user_agent = stamps.get(st.USER_AGENT, "")
        obj.created_at = st.as_datetime(stamps.get(st.CREATED_AT))
        obj.last_activity = st.as_datetime(stamps.get(st.LAST_ACTIVITY))
        obj.authenticated_at = st.as_datetime(stamps.get(st.AUTHENTICATED_AT))
        return obj

    async def acreate_model_instance(self, data):
        return await sync_to_async(self.create_model_instance)(data)

    def record_end(self, reason: str) -> None:
        """Record that this session ends now, for ``reason``: the sessions overview counts it once its row is gone."""
        from durable_sessions.services import session_ends_record

        stamps = self._stamps
        created, signed_in = st.as_datetime(stamps.get(st.CREATED_AT)), st.as_datetime(stamps.get(st.AUTHENTICATED_AT))
        session_ends_record(reason=reason, sessions=[(created, signed_in)])

    def record_sign_in(self, user) -> None:
        """Start the absolute lifetime now: ``user`` has just signed in to this session.

        A member of staff's session keeps the shorter staff timeouts for as long as it lasts.
        """
        self._stamps[st.AUTHENTICATED_AT] = int(time.time())
        self._stamps[st.STAFF] = bool(getattr(user, "is_staff", False))
        self.modified = True

    def get_session_cookie_age(self):
        # A staff session's cookie, row and Redis entry live no longer than its idle timeout.
        if self._stamps.get(st.STAFF):
            return min(super().get_session_cookie_age(), app_settings.STAFF_IDLE_TIMEOUT)
        return super().get_session_cookie_age()

    # --- Activity ----------------------------------------------------------------------------
    def record_activity(self) -> None:
        """Stamp activity now if the last stamp is older than the write interval.

        With changes pending in this request the stamp joins them (the
        middleware saves them next); otherwise it is written under the lock.
        """
        self._get_session()  # the stamps arrive with the data
        last_activity = self._stamps.get(st.LAST_ACTIVITY)
        if not isinstance(last_activity, int):
            return  # not saved yet: the first save stamps it
        if int(time.time()) - last_activity < app_settings.ACTIVITY_INTERVAL:
            return
        if self._modified:
            self._touch()
            return
        with self.locked():
            self._touch()

    def renew(self) -> None:
        """Save this session under its lock as it is, so that the response sends its cookie again."""
        with self.locked():
            self.modified = True

    def _touch(self) -> None:
        self._stamps[st.LAST_ACTIVITY] = int(time.time())
        if self.client.ip_address:
            self._stamps[st.IP_ADDRESS] = self.client.ip_address
        if self.client.user_agent:
            self._stamps[st.USER_AGENT] = self.client.user_agent[:USER_AGENT_MAX_LENGTH]
        self.modified = True

    # --- Housekeeping ---------------------------------------------------------------------------
    @classmethod
    def expired_keys_by_reason(cls) -> dict[str, list[str]]:
        """Return the keys of sessions that are over, by why: past their absolute lifetime, a staff
        session's idle timeout, or their expiry (the idle timeout every save slides)."""
        now = timezone.now()
        absolute = now - timedelta(seconds=app_settings.ABSOLUTE_LIFETIME)
        staff_absolute = now - timedelta(seconds=app_settings.STAFF_ABSOLUTE_LIFETIME)
        staff_idle = now - timedelta(seconds=app_settings.STAFF_IDLE_TIMEOUT)
        rows = cls.get_model_class().objects
        found: dict[str, str] = {}
        for reason, over in (
            (metrics.EXPIRED, rows.filter(expire_date__lt=now)),
            (metrics.IDLE, rows.filter(user__is_staff=True, last_activity__lt=staff_idle)),
            (
                metrics.LIFETIME,
                rows.filter(authenticated_at__lt=absolute)
                | rows.filter(user__is_staff=True, authenticated_at__lt=staff_absolute),
            ),
        ):
            found.update(dict.fromkeys(over.values_list("session_key", flat=True), reason))  # the last reason wins
        by_reason: dict[str, list[str]] = {}
        for key, reason in found.items():
            by_reason.setdefault(reason, []).append(key)
        return by_reason

    @classmethod
    def clear_expired(cls):
        from durable_sessions.services import session_ends_prune, sessions_end

        for reason, keys in cls.expired_keys_by_reason().items():
            sessions_end(keys, reason=reason)
        session_ends_prune()

    @classmethod
    async def aclear_expired(cls):
        await sync_to_async(cls.clear_expired)()


def locked(session: SessionBase) -> AbstractContextManager[SessionBase]:
    """Return ``session.locked()``; an engine without a row lock (Django's own, for benchmarks) changes unlocked."""
    return session.locked() if isinstance(session, SessionStore) else nullcontext(session)


def storage_key_of(session: SessionBase) -> str | None:
    """Return the key a session of the shop's store is stored under (None for another engine, or no session)."""
    return session.storage_key() if isinstance(session, SessionStore) and session.session_key else None


def record_sign_in(sender, request, user, **kwargs) -> None:
    """Receive user_logged_in: the session's absolute lifetime starts at this sign-in."""
    session = getattr(request, "session", None)
    if isinstance(session, SessionStore):
        session.record_sign_in(user)


def record_sign_out(sender, request, user, **kwargs) -> None:
    """Receive user_logged_out: the session ends (logout() flushes it next)."""
    session = getattr(request, "session", None)
    if isinstance(session, SessionStore) and session.session_key and user is not None:
        session.record_end(metrics.LOGOUT)
