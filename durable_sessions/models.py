"""Define the durable copy of each session, and the journal of keys Redis missed."""

from __future__ import annotations

from functools import cached_property

from django.conf import settings
from django.contrib.sessions.base_session import AbstractBaseSession
from django.db import models
from django.utils import timezone

from durable_sessions.conf import USER_AGENT_MAX_LENGTH
from durable_sessions.metrics import END_REASONS
from durable_sessions.stamps import is_stale, split


class UserSession(AbstractBaseSession):
    """A session's durable copy, with columns to find and administer it by.

    The columns are derived from the stamps stored with the session data on
    every save, so Redis alone answers a request and the database copy stays
    queryable.
    """

    # No database constraint: a session may still name a user who was deleted
    # meanwhile, and saving it must not fail; such a session is anonymous.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="sessions",
    )
    ip_address = models.GenericIPAddressField(null=True, blank=True, verbose_name="IP address")
    user_agent = models.CharField(max_length=USER_AGENT_MAX_LENGTH, blank=True)
    created_at = models.DateTimeField(null=True, blank=True)
    last_activity = models.DateTimeField(null=True, blank=True)
    authenticated_at = models.DateTimeField(null=True, blank=True)

    class Meta(AbstractBaseSession.Meta):
        # The tables keep the names they had when the models lived in accounts:
        # the release before this one reads them during a rolling deploy.
        db_table = "accounts_usersession"
        verbose_name = "session"
        verbose_name_plural = "sessions"
        indexes = [
            models.Index(fields=["user", "expire_date"], name="session_user_expiry"),
            models.Index(fields=["last_activity"], name="session_last_activity"),
        ]

    @classmethod
    def get_session_store_class(cls):
        # Imported when called: the store module imports this one.
        from durable_sessions.backends.cached_db import SessionStore

        return SessionStore

    @cached_property
    def stored(self) -> dict:
        """Return what the row stores, decoded once: the apps' data and, under STAMPS_KEY, the stamps."""
        return super().get_decoded()

    def get_decoded(self) -> dict:
        """Return the session's data as apps wrote it (without the tier's stamps)."""
        return split(self.stored)[0]

    def is_stale(self) -> bool:
        """Return whether the session ran past its idle timeout or absolute lifetime."""
        return is_stale(*split(self.stored))


class SessionCacheJournal(models.Model):
    """A session cache key whose write or delete did not reach Redis.

    Redis may still hold an older copy under this key. No process serves the
    session cache again until the key is deleted from Redis.
    """

    cache_key = models.CharField(max_length=255, primary_key=True)
    failed_at = models.DateTimeField()
    # On a Redis Cluster, the key's hash slot: which slots hold journaled keys is one
    # bounded query (at most 16,384 rows) however long the journal grows.
    slot = models.SmallIntegerField(null=True, blank=True, db_index=True)

    class Meta:
        db_table = "accounts_sessioncachejournal"
        verbose_name = "session cache journal entry"
        verbose_name_plural = "session cache journal"

    def __str__(self) -> str:
        return self.cache_key


class SessionEnd(models.Model):
    """A session that ended, and why: its row is gone, and the sessions overview still counts it."""

    reason = models.CharField(max_length=16, choices=[(reason, reason) for reason in END_REASONS])
    ended_at = models.DateTimeField(default=timezone.now)
    # The ended session's own stamps: when it began, when it was signed in to.
    created_at = models.DateTimeField(null=True, blank=True)
    authenticated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "ended session"
        verbose_name_plural = "ended sessions"
        indexes = [models.Index(fields=["ended_at"], name="session_end_ended_at")]

    def __str__(self) -> str:
        return f"{self.reason} at {self.ended_at:%Y-%m-%d %H:%M}"
