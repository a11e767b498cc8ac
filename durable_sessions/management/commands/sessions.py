"""Report on sessions, revoke them, and re-warm Redis from PostgreSQL."""

from __future__ import annotations

import re
from argparse import ArgumentTypeError
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.cached_db import KEY_PREFIX
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Avg, Max
from django.db.models.functions import Length
from django.utils import timezone

from durable_sessions.cache.backend import SessionRedisCache, session_cache
from durable_sessions.metrics import REVOKED
from durable_sessions.models import UserSession
from durable_sessions.sealing import seal
from durable_sessions.services import sessions_end

DURATION = re.compile(r"(\d+)([smhdw])")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
PROGRESS_WIDTH = 30


def duration(text: str) -> timedelta:
    """Parse 90s, 30m, 12h, 7d or 2w."""
    match = DURATION.fullmatch(text.strip())
    if not match or int(match.group(1)) == 0:
        raise ArgumentTypeError(f"{text!r} is not a duration like 30m, 12h or 7d")
    return timedelta(**{UNITS[match.group(2)]: int(match.group(1))})


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


class Command(BaseCommand):
    help = "Report on sessions (stats), end them (revoke), or reload them into Redis (rewarm)."

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True, metavar="{stats,revoke,rewarm}")
        actions.add_parser("stats", help="Count live and expired, signed-in and anonymous sessions; sizes; Redis.")
        revoke = actions.add_parser("revoke", help="End sessions in PostgreSQL and Redis.")
        which = revoke.add_mutually_exclusive_group(required=True)
        which.add_argument("--user", metavar="NAME", help="Every session of this username.")
        which.add_argument("--all-anonymous", action="store_true", help="Every session nobody is signed in to.")
        which.add_argument(
            "--inactive-for", metavar="DURATION", type=duration, help="Sessions idle this long (30m, 12h, 7d)."
        )
        revoke.add_argument("--dry-run", action="store_true", help="Say what would be ended; end nothing.")
        rewarm = actions.add_parser("rewarm", help="Load live sessions from PostgreSQL into Redis, in batches.")
        rewarm.add_argument("--batch-size", type=positive_int, default=500, help="Sessions per pipeline (500).")

    def handle(self, *args, action: str, **options):
        getattr(self, f"handle_{action}")(**options)

    # --- stats ------------------------------------------------------------------------
    def handle_stats(self, **options) -> None:
        now = timezone.now()
        live = UserSession.objects.filter(expire_date__gt=now)
        total = UserSession.objects.count()
        live_count = live.count()
        signed_in = live.exclude(user=None).count()
        sizes = live.aggregate(mean=Avg(Length("session_data")), biggest=Max(Length("session_data")))
        in_redis = self._count_in_cache(list(live.values_list("session_key", flat=True)))
        rows = [
            ("sessions", total),
            ("live", live_count),
            ("expired", total - live_count),
            ("signed in (live)", signed_in),
            ("anonymous (live)", live_count - signed_in),
            ("live in Redis", in_redis),
            ("live not in Redis", live_count - in_redis),
            ("mean size (bytes)", round(sizes["mean"] or 0)),
            ("max size (bytes)", sizes["biggest"] or 0),
        ]
        for label, value in rows:
            self.stdout.write(f"{label:<20} {value}")

    @staticmethod
    def _count_in_cache(keys: list[str]) -> int:
        cache = session_cache()
        if isinstance(cache, SessionRedisCache):
            return cache.count_present([KEY_PREFIX + key for key in keys])
        return sum(1 for key in keys if cache.has_key(KEY_PREFIX + key))

    # --- revoke -----------------------------------------------------------------------
    def handle_revoke(self, *, user, all_anonymous, inactive_for, dry_run, **options) -> None:
        sessions = UserSession.objects.all()
        if user is not None:
            found = get_user_model().objects.filter(username=user).first()
            if found is None:
                raise CommandError(f"No user is named {user!r}.")
            sessions, what = sessions.filter(user=found), f"of {user}"
        elif all_anonymous:
            sessions, what = sessions.filter(user=None), "anonymous"
        else:
            sessions, what = sessions.filter(last_activity__lt=timezone.now() - inactive_for), "inactive"
        rows = list(sessions.values_list("session_key", "user__username", "last_activity"))
        for key, username, last_activity in rows:
            self.stdout.write(f"{key[:8]}…  {username or '(anonymous)'}  last active {last_activity:%Y-%m-%d %H:%M}")
        if dry_run:
            self.stdout.write(f"Would end {len(rows)} {what} session(s). Nothing was changed (--dry-run).")
            return
        ended = sessions_end((key for key, _, _ in rows), reason=REVOKED)
        self.stdout.write(self.style.SUCCESS(f"Ended {ended} {what} session(s) in PostgreSQL and Redis."))

    # --- rewarm ------------------------------------------------------------------------
    def handle_rewarm(self, *, batch_size: int, **options) -> None:
        cache = session_cache()
        live = UserSession.objects.filter(expire_date__gt=timezone.now()).order_by("session_key")
        total = live.count()
        loaded = skipped = batches = 0
        batch: list[UserSession] = []
        for row in live.only("session_key", "session_data", "expire_date").iterator(chunk_size=batch_size):
            batch.append(row)
            if len(batch) == batch_size:
                loaded, skipped = self._warm(cache, batch, loaded, skipped)
                batches += 1
                batch = []
                self._progress(loaded + skipped, total)
        if batch:
            loaded, skipped = self._warm(cache, batch, loaded, skipped)
            batches += 1
        self._progress(loaded + skipped, total)
        self.stdout.write("")
        self.stdout.write(
            self.style.SUCCESS(
                f"Re-warmed {loaded} session(s) into the session cache in {batches} batch(es); "
                f"skipped {skipped} past their idle timeout or lifetime."
            )
        )

    @staticmethod
    def _warm(cache, rows: list[UserSession], loaded: int, skipped: int) -> tuple[int, int]:
        now = timezone.now()
        entries = []
        for row in rows:
            payload = row.stored
            if not payload or row.is_stale():
                skipped += 1
                continue
            timeout = max(1, int((row.expire_date - now).total_seconds()))
            key = KEY_PREFIX + row.session_key
            entries.append((key, seal(key, payload), timeout))
        # ADD (NX): a request may have cached a newer copy meanwhile; never overwrite it.
        if isinstance(cache, SessionRedisCache):
            cache.add_many(entries)
        else:
            for key, payload, timeout in entries:
                cache.add(key, payload, timeout)
        return loaded + len(entries), skipped

    def _progress(self, done: int, total: int) -> None:
        filled = PROGRESS_WIDTH * done // total if total else PROGRESS_WIDTH
        self.stdout.write(f"\r[{'#' * filled}{'.' * (PROGRESS_WIDTH - filled)}] {done}/{total}", ending="")
        self.stdout.flush()
