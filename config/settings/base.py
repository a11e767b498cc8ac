"""Settings shared by every environment; the others import this and override."""

from __future__ import annotations

from pathlib import Path

import environ
from csp.constants import NONE, SELF

from config import env
from config.caches import SESSION_CACHE_ALIAS as _SESSION_CACHE_ALIAS
from config.caches import Cluster, Sentinel, build_caches
from config.logs import build_logging


def postgres_options(lock_timeout_ms: int) -> str:
    """Return the options every PostgreSQL connection starts with."""
    # No request waits on a lock longer than lock_timeout (a hot session's row, say). A
    # misspelt word still finds its product: "choclate" is 0.58 like "chocolate" by
    # trigrams, under pg_trgm's default word similarity threshold of 0.6.
    return f"-c lock_timeout={lock_timeout_ms} -c pg_trgm.word_similarity_threshold=0.5"


BASE_DIR = Path(__file__).resolve().parent.parent.parent
# Local state of the embedded default (SQLite); git-ignored, never used in production.
DATA_DIR = BASE_DIR / "data"

# --- Core ---------------------------------------------------------------------
DEBUG = bool(env.DEBUG)
SECRET_KEY = env.SECRET_KEY
ALLOWED_HOSTS = env.ALLOWED_HOSTS or ["localhost", "127.0.0.1", "[::1]"]
CSRF_TRUSTED_ORIGINS = env.CSRF_TRUSTED_ORIGINS
ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
# One language: without the translation machinery, every rendered variable
# skips a per-thread language lookup (Django's advice for untranslated sites).
USE_I18N = False
DATE_FORMAT = "j M Y"
DATETIME_FORMAT = "j M Y, H:i"
SHORT_DATE_FORMAT = "d/m/Y"
SHORT_DATETIME_FORMAT = "d/m/Y H:i"
USE_TZ = True

# --- Applications ---------------------------------------------------------------
INSTALLED_APPS = [
    # django.contrib.admin on the shop's admin site (throttled sign-in and password change).
    "accounts.apps.AdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "csp",  # only for its system checks of CONTENT_SECURITY_POLICY
    "django.contrib.postgres",  # search lookups (shop.selectors); harmless on SQLite
    "durable_sessions",
    "accounts",
    "shop",
    "cart",
]

MIDDLEWARE = [
    # First: every request gets its id and its access line, probes included.
    "shop.logs.AccessLogMiddleware",
    # Then probes, answered before host validation and redirects.
    "shop.health.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Above whitenoise, so static files carry the policies too (an SVG opened on its own is a document).
    "csp.middleware.CSPMiddleware",
    "django_permissions_policy.PermissionsPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Below probes and static files: it times the shop's own views.
    "shop.metrics.RequestMetricsMiddleware",
    "durable_sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    # Django's, keeping the shopper signed in while PostgreSQL is down (accounts/middleware.py).
    "accounts.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "cart.context_processors.cart",
            ],
            # {% url %} reversed once per process (shop/cached_urls.py).
            "builtins": ["shop.cached_urls"],
        },
    },
]

# --- Database -----------------------------------------------------------------------
if env.DATABASE_URL:
    _database = environ.Env.db_url_config(env.DATABASE_URL)
else:
    DATA_DIR.mkdir(exist_ok=True)
    _database = {"ENGINE": "django.db.backends.sqlite3", "NAME": DATA_DIR / "db.sqlite3"}
if _database["ENGINE"] == "django.db.backends.postgresql":
    # Keep connections across requests, but check them first after a failover.
    _database.update(CONN_MAX_AGE=60, CONN_HEALTH_CHECKS=True)
    # A request finds out within 2 s that PostgreSQL cannot be reached (libpq's least).
    _database.setdefault("OPTIONS", {}).setdefault("connect_timeout", 2)
    # No request waits on a lock for longer than this (a hot session's row, say).
    _database["OPTIONS"].setdefault("options", postgres_options(env.DATABASE_LOCK_TIMEOUT))
elif _database["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite ignores SELECT ... FOR UPDATE; taking the write lock when a
    # transaction begins serialises session updates (durable_sessions/locking.py).
    _database.setdefault("OPTIONS", {}).update(transaction_mode="IMMEDIATE", timeout=20)
DATABASES = {"default": _database}

# --- Caches and sessions ------------------------------------------------------------
# Redis Sentinel, when REDIS_SENTINELS names the sentinels; None for one Redis.
REDIS_SENTINEL = Sentinel.parse(
    env.REDIS_SENTINELS,
    env.REDIS_SENTINEL_MASTER,
    env.REDIS_REPLICA_ACKS,
    env.REDIS_REPLICA_ACK_TIMEOUT,
    env.REDIS_SENTINEL_PASSWORD,
)
# Redis Cluster, when REDIS_CLUSTER_NODES names its seed nodes; None otherwise.
REDIS_CLUSTER = Cluster.parse(env.REDIS_CLUSTER_NODES, env.REDIS_REPLICA_ACKS, env.REDIS_REPLICA_ACK_TIMEOUT)
CACHES = build_caches(env.REDIS_URL, session_db=env.REDIS_SESSION_DB, sentinel=REDIS_SENTINEL, cluster=REDIS_CLUSTER)
# Redis first, PostgreSQL always, changes under the row lock (durable_sessions/).
SESSION_ENGINE = env.SESSION_ENGINE
SESSION_SAVE_EVERY_REQUEST = env.SESSION_SAVE_EVERY_REQUEST
SESSION_CACHE_ALIAS = _SESSION_CACHE_ALIAS
# The session tier's own settings (durable_sessions/conf.py has each default).
DURABLE_SESSIONS_IDLE_TIMEOUT = env.SESSION_IDLE_TIMEOUT
DURABLE_SESSIONS_ABSOLUTE_LIFETIME = env.SESSION_ABSOLUTE_LIFETIME
DURABLE_SESSIONS_ACTIVITY_INTERVAL = env.SESSION_ACTIVITY_INTERVAL
DURABLE_SESSIONS_UPDATE_LOCK = env.SESSION_UPDATE_LOCK
if REDIS_SENTINEL or REDIS_CLUSTER:
    DURABLE_SESSIONS_REPLICA_ACKS = (REDIS_SENTINEL or REDIS_CLUSTER).replica_acks
    DURABLE_SESSIONS_REPLICA_ACK_TIMEOUT = (REDIS_SENTINEL or REDIS_CLUSTER).ack_timeout_ms
# Every save sets the expiry this far ahead: the idle timeout, sliding with activity.
SESSION_COOKIE_AGE = DURABLE_SESSIONS_IDLE_TIMEOUT
CLIENT_IP_HEADER = env.CLIENT_IP_HEADER
METRICS_TOKEN = env.METRICS_TOKEN
TRUSTED_PROXY_COUNT = env.TRUSTED_PROXY_COUNT
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# Log (rather than silently drop) the Redis errors the session cache swallows.
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
DJANGO_REDIS_LOGGER = "durable_sessions.cache"

# --- Messages ---------------------------------------------------------------------
# Cookie only: the default falls back to the session when the cookie is full,
# a session write outside the session's lock that could overwrite a basket.
MESSAGE_STORAGE = "django.contrib.messages.storage.cookie.CookieStorage"

# --- Users --------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "accounts:account"
LOGOUT_REDIRECT_URL = "shop:home"
# Failed sign-ins allowed per username and per client address in the window.
LOGIN_FAILURES_PER_USERNAME = 5
LOGIN_FAILURES_PER_ADDRESS = 20
LOGIN_FAILURE_WINDOW = 15 * 60
AUTHENTICATION_BACKENDS = ["accounts.throttle.ThrottledModelBackend"]

# --- Email ----------------------------------------------------------------------------
if env.EMAIL_URL:
    globals().update(environ.Env.email_url_config(env.EMAIL_URL))  # EMAIL_BACKEND, EMAIL_HOST, ...
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = env.DEFAULT_FROM_EMAIL

# --- Static files ---------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- Security ---------------------------------------------------------------------------
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Scripts, styles, images and fonts from the shop's own origin only, and no
# inline script or style (no 'unsafe-inline'): an injected <script> or
# on...= handler does not run. The shop's templates have none, and Django's
# admin needs none either: its scripts are files, its inline <script> tags are
# JSON data (type="application/json", never executed). One admin <style>,
# a leftover in change_list.html shown only when a list offers no actions,
# is refused; the rule it holds (width: inherit) resets nothing any
# stylesheet sets, so the page looks the same.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        # Not covered by default-src: where forms may post, who may frame the
        # shop (as X_FRAME_OPTIONS, for browsers that read only CSP), <base>.
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "base-uri": [NONE],
        "object-src": [NONE],
    }
}
# Browser features the shop never uses, turned off for it and anything it embeds.
PERMISSIONS_POLICY = {
    feature: []
    for feature in (
        "accelerometer",
        "browsing-topics",
        "camera",
        "display-capture",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "payment",
        "usb",
    )
}

# --- Logging ----------------------------------------------------------------------------
# Text on a workstation; production defaults to JSON (see production.py).
LOG_FORMAT = env.LOG_FORMAT or "text"
LOGGING = build_logging(LOG_FORMAT, level=env.LOG_LEVEL, access_log=False)
