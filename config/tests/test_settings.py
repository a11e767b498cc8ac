"""Settings come from the environment; production refuses unsafe defaults."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

from harness.servers.shop import BASE_DIR, TEST_SECRET_KEY

SERVICE_VARIABLES = ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "HTTPS")


def manage(*args: str, settings: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env={**clean, "DJANGO_SETTINGS_MODULE": settings, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_refuses_to_start_without_secret_key():
    result = manage("check", settings="config.settings.production", DATABASE_URL="postgres://u@db/shop")

    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_production_refuses_to_start_without_database_url():
    result = manage("check", settings="config.settings.production", SECRET_KEY=TEST_SECRET_KEY)

    assert result.returncode != 0
    assert "DATABASE_URL is not set" in result.stderr


def test_check_deploy_has_no_warnings_with_production_environment():
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        settings="config.settings.production",
        SECRET_KEY=TEST_SECRET_KEY,
        DATABASE_URL="postgres://shop:pw@db.internal:5432/shop",
        REDIS_URL="redis://cache.internal:6379/0",
        ALLOWED_HOSTS="shop.example.com",
        CSRF_TRUSTED_ORIGINS="https://shop.example.com",
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_embedded_default_is_sqlite_and_in_process_cache():
    code = (
        "from django.conf import settings as s;"
        "print(s.DATABASES['default']['ENGINE']);"
        "print(s.DATABASES['default']['NAME']);"
        "print(sorted({c['BACKEND'] for c in s.CACHES.values()}));"
        "print(s.SESSION_ENGINE, s.SESSION_CACHE_ALIAS)"
    )
    result = manage("shell", "--no-imports", "-c", code, settings="config.settings.local")

    assert result.returncode == 0, result.stderr
    engine, name, backends, sessions = result.stdout.strip().splitlines()
    assert engine == "django.db.backends.sqlite3"
    assert name == str(BASE_DIR / "data" / "db.sqlite3")
    assert backends == "['django.core.cache.backends.locmem.LocMemCache']"
    assert sessions == "durable_sessions.backends.cached_db sessions"


def test_redis_url_selects_django_redis_for_both_caches():
    code = (
        "from django.conf import settings as s; print(s.CACHES['default']['BACKEND'], s.CACHES['sessions']['BACKEND'])"
    )
    result = manage(
        "shell", "--no-imports", "-c", code, settings="config.settings.local", REDIS_URL="redis://127.0.0.1:6379/3"
    )

    assert result.returncode == 0, result.stderr
    # The session cache is django-redis behind a breaker with a journal.
    expected = ["django_redis.cache.RedisCache", "durable_sessions.cache.backend.SessionRedisCache"]
    assert result.stdout.split() == expected


def test_production_reads_redis_sentinel_from_the_environment():
    result = manage(
        "shell",
        "-c",
        "from django.conf import settings; s = settings.CACHES['sessions']; "
        "print(s['LOCATION'], s['OPTIONS']['SENTINELS'], settings.DURABLE_SESSIONS_REPLICA_ACKS)",
        settings="config.settings.production",
        SECRET_KEY=TEST_SECRET_KEY,
        DATABASE_URL="postgres://u@db/shop",
        REDIS_SENTINELS="s1.internal:26379,s2.internal:26379",
        REDIS_SENTINEL_MASTER="shop-primary",
        REDIS_REPLICA_ACKS="2",
    )

    assert result.returncode == 0, result.stderr
    expected = "redis://shop-primary/1 (('s1.internal', 26379), ('s2.internal', 26379)) 2"
    assert result.stdout.strip().splitlines()[-1] == expected


def test_production_reads_a_redis_cluster_from_the_environment():
    result = manage(
        "shell",
        "-c",
        "from django.conf import settings; c = settings.CACHES; "
        "print(c['sessions']['BACKEND'], c['default']['OPTIONS']['CLUSTER_NODES'], "
        "settings.DURABLE_SESSIONS_REPLICA_ACKS)",
        settings="config.settings.production",
        SECRET_KEY=TEST_SECRET_KEY,
        DATABASE_URL="postgres://u@db/shop",
        REDIS_URL="redis://:pw@ignored/0",
        REDIS_CLUSTER_NODES="n1.internal:6379,n2.internal:6379",
        REDIS_REPLICA_ACKS="1",
    )

    assert result.returncode == 0, result.stderr
    expected = "durable_sessions.cache.shards.ClusterSessionCache (('n1.internal', 6379), ('n2.internal', 6379)) 1"
    assert result.stdout.strip().splitlines()[-1] == expected


def production(*args: str, **env: str) -> subprocess.CompletedProcess:
    """Run manage.py on production settings with its two required variables (a fresh random key)."""
    required = {"SECRET_KEY": secrets.token_urlsafe(50), "DATABASE_URL": "postgres://shop:pw@db.internal:5432/shop"}
    return manage(*args, settings="config.settings.production", **{**required, **env})


def production_settings(*names: str, **env: str) -> list[str]:
    code = "from django.conf import settings; " + "; ".join(f"print(repr(settings.{name}))" for name in names)
    result = production("shell", "--no-imports", "-c", code, **env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-len(names) :]


def test_production_refuses_to_start_with_debug_on():
    result = production("check", DEBUG="true")

    assert result.returncode != 0
    assert "DEBUG is on. Production refuses to start in debug mode" in result.stderr


def test_check_deploy_reports_nothing_with_only_the_required_variables():
    result = production("check", "--deploy", "--fail-level", "DEBUG")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_production_cookies_carry_the_host_prefix_over_https():
    names = ("SESSION_COOKIE_NAME", "CSRF_COOKIE_NAME", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE")
    where = ("SESSION_COOKIE_PATH", "CSRF_COOKIE_PATH", "SESSION_COOKIE_DOMAIN", "CSRF_COOKIE_DOMAIN")

    # What a browser requires of a __Host- cookie: Secure, Path=/, no Domain.
    assert production_settings(*names, *where) == [
        *["'__Host-sessionid'", "'__Host-csrftoken'", "True", "True"],
        *["'/'", "'/'", "None", "None"],
    ]


def test_plain_http_rigs_keep_djangos_cookie_names():
    names = production_settings("SESSION_COOKIE_NAME", "CSRF_COOKIE_NAME", "SESSION_COOKIE_SECURE", HTTPS="false")

    assert names == ["'sessionid'", "'csrftoken'", "False"]
