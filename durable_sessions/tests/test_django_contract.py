"""Django's own session tests, run against the shop's SessionStore and middleware.

The tests come from the source distribution of the installed Django (fetched
once, never committed): ``CacheDBSessionTests`` (and its time-zone twin) and
``SessionMiddlewareTests`` from ``tests/sessions_tests``. They run as Django
runs them, with the session cache as the default cache (one test checks that
no other alias is used), except that:

* each test runs in autocommit, as requests do in production: the store writes
  Redis once its transaction has committed, which the one transaction a Django
  TestCase wraps each test in would never do;
* ``SessionMiddleware`` is the shop's, and ``Session`` (the model a middleware
  test reads back) the shop's UserSession, found by the cookie's storage key:
  rows hold a keyed hash of the cookie, never the cookie.
"""

from __future__ import annotations

import importlib
import sys
import types

from django.test import override_settings

from config.caches import SESSION_CACHE_ALIAS, build_caches
from durable_sessions.backends.cached_db import SessionStore
from durable_sessions.middleware import SessionMiddleware
from durable_sessions.models import UserSession
from durable_sessions.sealing import storage_key
from harness.testing import django_test_suite

sys.path.insert(0, str(django_test_suite("sessions_tests", "cache")))
# sessions_tests.models defines a model of an app that is not installed here; it
# only serves CustomDatabaseSessionTests, which is not part of this contract.
sys.modules.setdefault("sessions_tests.models", types.SimpleNamespace(SessionStore=None))
django_suite = importlib.import_module("sessions_tests.tests")
django_suite.SessionMiddleware = SessionMiddleware


class StoredSessions:
    """UserSession's manager, looked up by cookie value as Django's tests look up Session."""

    @staticmethod
    def get(*, session_key: str) -> UserSession:
        return UserSession.objects.get(session_key=storage_key(session_key))


django_suite.Session = types.SimpleNamespace(objects=StoredSessions())


def session_cache_as_default() -> override_settings:
    from django.conf import settings

    caches = build_caches(settings.TEST_REDIS_URL)
    return override_settings(CACHES={"default": caches[SESSION_CACHE_ALIAS]}, SESSION_CACHE_ALIAS="default")


class Autocommit:
    """Run each test outside a wrapping transaction: commit callbacks run as in production."""

    @classmethod
    def _databases_support_transactions(cls) -> bool:
        return False  # Django's TestCase then behaves as TransactionTestCase


@session_cache_as_default()
class TestCacheDBSession(Autocommit, django_suite.CacheDBSessionTests):
    backend = SessionStore


@session_cache_as_default()
class TestCacheDBSessionWithTimeZone(Autocommit, django_suite.CacheDBSessionWithTimeZoneTests):
    backend = SessionStore


@session_cache_as_default()
class TestSessionMiddleware(Autocommit, django_suite.SessionMiddlewareTests):
    pass
