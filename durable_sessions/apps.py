from __future__ import annotations

from django.apps import AppConfig


class DurableSessionsConfig(AppConfig):
    name = "durable_sessions"
    verbose_name = "Sessions"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in, user_logged_out

        from durable_sessions.backends.cached_db import record_sign_in, record_sign_out

        # Any sign-in (the shop's pages, the admin) starts the absolute lifetime afresh.
        user_logged_in.connect(record_sign_in, dispatch_uid="durable_sessions.record_sign_in")
        user_logged_out.connect(record_sign_out, dispatch_uid="durable_sessions.record_sign_out")
