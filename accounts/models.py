"""Define the shop's user model and the sessions that know whom they belong to."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.contrib.sessions.base_session import AbstractBaseSession
from django.db import models


class User(AbstractUser):
    """A shopper or a member of staff.

    The project's own model from the first migration, so that fields can be
    added later without swapping the user model under existing data.
    """


class UserSession(AbstractBaseSession):
    """A session's durable copy, with columns to find and administer it by.

    The columns are derived from stamps kept inside the session data on every
    save (see accounts.sessions), so Redis alone answers a request and the
    database copy stays queryable.
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
    user_agent = models.CharField(max_length=400, blank=True)
    created_at = models.DateTimeField(null=True, blank=True)
    last_activity = models.DateTimeField(null=True, blank=True)
    authenticated_at = models.DateTimeField(null=True, blank=True)

    class Meta(AbstractBaseSession.Meta):
        verbose_name = "session"
        verbose_name_plural = "sessions"
        indexes = [
            models.Index(fields=["user", "expire_date"], name="session_user_expiry"),
            models.Index(fields=["last_activity"], name="session_last_activity"),
        ]

    @classmethod
    def get_session_store_class(cls):
        from accounts.sessions import SessionStore

        return SessionStore


class SessionCacheJournal(models.Model):
    """A session cache key whose write or delete did not reach Redis.

    Redis may still hold an older copy under this key. No process serves the
    session cache again until the key is deleted from Redis (see accounts.cache).
    """

    cache_key = models.CharField(max_length=255, primary_key=True)
    failed_at = models.DateTimeField()

    class Meta:
        verbose_name = "session cache journal entry"
        verbose_name_plural = "session cache journal"

    def __str__(self) -> str:
        return self.cache_key
