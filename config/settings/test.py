"""Settings for the test suite: real PostgreSQL and Redis on this machine."""

from __future__ import annotations

import environ

from config import env
from config.caches import build_caches

from .base import *  # noqa: F403

DEBUG = False
SECRET_KEY = "test-only-key-not-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]

# Tests always run on the real servers: the ones named in the environment, or
# the machine's own. Databases 10 and 11 keep test keys apart from a local shop's.
_database = environ.Env.db_url_config(env.DATABASE_URL or "postgres://postgres@127.0.0.1:5432/shop")
_database.setdefault("OPTIONS", {}).setdefault("connect_timeout", 3)
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
