"""Build the logging configuration: plain text, or one JSON object per line for log collectors."""

from __future__ import annotations

from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def json_formatter() -> dict[str, Any]:
    """Cloud Logging's field names: ``severity`` (it reads the level there), ``message``, ``time``."""
    return {
        "()": "pythonjsonlogger.json.JsonFormatter",
        "fmt": "%(levelname)s %(message)s %(name)s %(process)d %(request_id)s",
        "rename_fields": {"levelname": "severity", "name": "logger"},
        "timestamp": "time",
    }


def build_logging(log_format: str, *, level: str, access_log: bool) -> dict[str, Any]:
    """Return Django's LOGGING: everything to standard output, as ``log_format`` ("text" or "json") says.

    ``access_log``: one line per request (shop.logs.AccessLogMiddleware), for
    servers whose own access log is off (gunicorn); runserver logs its own.
    """
    if log_format not in ("text", "json"):
        raise ValueError(f'LOG_FORMAT must be "text" or "json", not {log_format!r}')
    formatter = json_formatter() if log_format == "json" else {"format": TEXT_FORMAT}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "shop.logs.RequestIdFilter"}},
        "formatters": {"shop": formatter},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "shop",
                "filters": ["request_id"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {"shop.access": {"level": "INFO" if access_log else "WARNING"}},
    }
