"""Small helpers the harness's command-line tools share."""

from __future__ import annotations

import os


def postgres_base_url() -> str:
    """Return DATABASE_URL without its database name, or the machine's PostgreSQL."""
    url = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/shop"
    return url.rsplit("/", 1)[0]
