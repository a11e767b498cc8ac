"""Settings for the test suite: real PostgreSQL and Redis on this machine."""

from __future__ import annotations

import environ

from config import env
from config.caches import build_caches

from .base import *  # noqa: F403

DEBUG = False
# The key of the servers the harness starts (harness.servers.shop.TEST_SECRET_KEY): sessions
# are stored under keyed hashes of their cookies, which tests compute for those servers too.
SECRET_KEY = "harness-only-secret-7f3a9c1e5b2d8f4a6c0e9b3d7f1a5c8e2b6d0f4a9c3e7b1d5f8a2c6e0b4d"
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]

# Tests always run on the real servers: the ones named in the environment, or
# the machine's own. Databases 10 and 11 keep test keys apart from a local shop's.
_database = environ.Env.db_url_config(env.DATABASE_URL or "postgres://postgres@127.0.0.1:5432/shop")
_database.setdefault("OPTIONS", {}).setdefault("connect_timeout", 3)
_database["OPTIONS"].setdefault("options", postgres_options(env.DATABASE_LOCK_TIMEOUT))  # noqa: F405
DATABASES = {"default": _database}
TEST_REDIS_URL = env.REDIS_URL or "redis://127.0.0.1:6379/10"
CACHES = build_caches(TEST_REDIS_URL, session_db=env.REDIS_SESSION_DB)
# In-process tests run no journal watcher thread (pytest-django guards the
# database per test); the live servers they start, on production settings, do.
DURABLE_SESSIONS_JOURNAL_POLL_INTERVAL = 0

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Static files come from the finders; only the production image collects them.
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
