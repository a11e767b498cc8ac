"""Settings for the stateless containers that serve the shop."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from config import env

# Checked before the base settings load, so a missing variable is the error shown.
if not env.SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY is not set. Production refuses to start without it: set SECRET_KEY to a long "
        "random string (python -c 'import secrets; print(secrets.token_urlsafe(50))')."
    )
if env.DEBUG:
    raise ImproperlyConfigured(
        "DEBUG is on. Production refuses to start in debug mode: its error pages show settings, "
        "source code and SQL to whoever triggers an error. Unset DEBUG or set DEBUG=false."
    )
if not env.DATABASE_URL:
    raise ImproperlyConfigured(
        "DATABASE_URL is not set. Production keeps sessions and orders in PostgreSQL, never "
        "inside the container: set DATABASE_URL=postgres://user:password@host:5432/name."
    )

from config.caches import build_caches  # noqa: E402
from config.logs import build_logging  # noqa: E402

from .base import *  # noqa: E402, F403

DEBUG = False
# One JSON object per line (Cloud Logging reads its severity), and an access
# line per request from the shop itself: gunicorn's own access log is off.
LOG_FORMAT = env.LOG_FORMAT or "json"
LOGGING = build_logging(LOG_FORMAT, level=env.LOG_LEVEL, access_log=True)
# Many processes serve production: without Redis, sessions come from the database alone.
CACHES = build_caches(
    env.REDIS_URL,
    session_db=env.REDIS_SESSION_DB,
    single_process=False,
    sentinel=REDIS_SENTINEL,  # noqa: F405
    cluster=REDIS_CLUSTER,  # noqa: F405
)

# --- HTTPS ------------------------------------------------------------------------------
# TLS ends at the load balancer, which says so in X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
_https = True if env.HTTPS is None else env.HTTPS
SECURE_SSL_REDIRECT = _https
# Probes call the container directly over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_SECURE = _https
CSRF_COOKIE_SECURE = _https
if _https:
    # A browser keeps a __Host- cookie only if it is Secure, for Path=/ and
    # without Domain: no sibling subdomain or plain-HTTP page can set or shadow
    # it (cookie tossing, session fixation). Browsers refuse the prefix without
    # Secure, so plain-HTTP rigs (HTTPS=false) keep Django's names, which the
    # harness reads.
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"
    SESSION_COOKIE_PATH = CSRF_COOKIE_PATH = "/"
    SESSION_COOKIE_DOMAIN = CSRF_COOKIE_DOMAIN = None
    # Sessions issued under the old name move to the new one on their next
    # request, so the rename signs nobody out. Only while no __Host- cookie is
    # sent, and sign-in rotates the key, so a planted old-name cookie cannot
    # fix anyone's signed-in session; drop this a release or two later.
    DURABLE_SESSIONS_PREVIOUS_COOKIE_NAME = "sessionid"
SECURE_HSTS_SECONDS = 60 * 60 * 24 * 365 if _https else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = _https
SECURE_HSTS_PRELOAD = _https
