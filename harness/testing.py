"""Helpers the test suites share: a shopper's password and sign-in, and waiting for a condition."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

PASSWORD = "a-long-Passphrase-42"


def sign_in(client, username: str = "ada", password: str = PASSWORD):
    """Sign in through the shop's sign-in page, as a shopper does."""
    return client.post("/accounts/login/", {"username": username, "password": password})


def basket_lines(client) -> dict:
    """Return the basket's lines (product id → quantity) as the shop reports them."""
    return client.get("/cart/summary.json").json()["lines"]


def log_entries(path: Path) -> list[dict]:
    """Return every line of a production server's log (one JSON object a line), parsed; fail on any other line."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def access_lines(path: Path, method: str, url_path: str, status: int) -> list[dict]:
    """Return the access lines of a production server's log for one method, path and status."""
    return [
        entry
        for entry in log_entries(path)
        if entry.get("logger") == "shop.access"
        and (entry["method"], entry["path"], entry["status"]) == (method, url_path, status)
    ]


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.05) -> None:
    """Wait until ``predicate()`` is true, or fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(interval)


def session_row(session_key: str):
    """Return the row of the session whose cookie is ``session_key`` (rows are keyed by its storage key), or None."""
    from durable_sessions.models import UserSession
    from durable_sessions.sealing import storage_key

    return UserSession.objects.filter(session_key=storage_key(session_key)).first()


def session_cache_key(session_key: str) -> str:
    """Return the session cache key of the session whose cookie is ``session_key``."""
    from django.contrib.sessions.backends.cached_db import KEY_PREFIX

    from durable_sessions.sealing import storage_key

    return KEY_PREFIX + storage_key(session_key)


def session_cached(session_key: str):
    """Return what the session cache holds for this cookie, unsealed: the payload, a tombstone, or None."""
    from durable_sessions.cache.backend import session_cache
    from durable_sessions.sealing import unseal

    key = session_cache_key(session_key)
    return unseal(key, session_cache().get(key))


def session_cache_put(session_key: str, payload, timeout: int = 3600) -> None:
    """Put ``payload`` in the session cache for this cookie, sealed as the store seals it."""
    from durable_sessions.cache.backend import session_cache
    from durable_sessions.sealing import seal

    key = session_cache_key(session_key)
    session_cache().set(key, seal(key, payload), timeout)


def session_backdate(session_key: str, **stamps: int) -> None:
    """Rewrite a stored session's stamps (its row, the row's columns, Redis), as if time had passed."""
    from durable_sessions.backends.cached_db import SessionStore
    from durable_sessions.stamps import STAMPS_KEY, as_datetime

    row = session_row(session_key)
    payload = row.stored
    payload[STAMPS_KEY].update(stamps)
    row.session_data = SessionStore().encode(payload)
    for column in ("created_at", "last_activity", "authenticated_at"):  # the stamps' own names
        if column in stamps:
            setattr(row, column, as_datetime(stamps[column]))
    row.save()
    session_cache_put(session_key, payload)


def django_test_suite(*packages: str):
    """Return the tests/ folder of the installed Django's source distribution, holding ``packages``.

    Fetched once from the package index with pip (the sdist carries Django's own
    tests; the wheel does not) into the git-ignored ``.django-tests/``, never
    committed. Only the named test packages are unpacked.
    """
    import subprocess
    import sys
    import tarfile
    import tempfile
    from pathlib import Path

    import django

    version = django.__version__
    tests = Path(__file__).resolve().parent.parent / ".django-tests" / version / "tests"
    if all((tests / package / "__init__.py").exists() for package in packages):
        return tests
    with tempfile.TemporaryDirectory() as download:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:"]
            + [f"Django=={version}", "--dest", download],
            check=True,
        )
        (sdist,) = Path(download).glob("*.tar.gz")
        prefix = f"{sdist.name.removesuffix('.tar.gz')}/tests/"
        with tarfile.open(sdist) as archive:
            members = [
                member
                for member in archive.getmembers()
                if member.isfile() and any(member.name.startswith(prefix + p + "/") for p in packages)
            ]
            for member in members:
                member.name = member.name.removeprefix(prefix)
            archive.extractall(tests, members=members, filter="data")
    return tests
