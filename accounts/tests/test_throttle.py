"""The sign-in throttle counts every attempt before its password is checked, on the real Redis."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections
from django.test import Client

from accounts.models import User
from harness.servers.backing import free_port
from harness.testing import sign_in, wait_until

pytestmark = pytest.mark.django_db

CONCURRENT_GUESSES = 20
ANOTHER_ADDRESS = "198.51.100.7"


def me(client) -> dict:
    return client.get("/accounts/me.json").json()


class HeldChecks:
    """Hold every password check until each attempt has reached one or been answered.

    So every attempt is in flight at once, as when an attacker sends them
    together: a throttle that counts only after the (slow) check lets them all
    through its check first.
    """

    def __init__(self, attempts: int) -> None:
        self.attempts = attempts
        self.reached = self.answered = 0
        self.changed = threading.Condition()

    def wrap(self, check_password):
        def held(user, raw_password):
            with self.changed:
                self.reached += 1
                self.changed.notify_all()
                assert self.changed.wait_for(lambda: self.reached + self.answered >= self.attempts, timeout=30)
            return check_password(user, raw_password)

        return held

    def answer(self) -> None:
        with self.changed:
            self.answered += 1
            self.changed.notify_all()


def test_concurrent_wrong_passwords_are_checked_at_most_the_limit_and_lock_the_account(
    ada, password_checks, monkeypatch, settings
):
    held = HeldChecks(CONCURRENT_GUESSES)
    monkeypatch.setattr(User, "check_password", held.wrap(User.check_password))

    def guess(_: int) -> int:
        try:
            return sign_in(Client(), password="wrong").status_code
        finally:
            held.answer()
            connections.close_all()

    with ThreadPoolExecutor(max_workers=CONCURRENT_GUESSES) as pool:
        codes = list(pool.map(guess, range(CONCURRENT_GUESSES)))

    assert codes == [200] * CONCURRENT_GUESSES
    assert len(password_checks) == settings.LOGIN_FAILURES_PER_USERNAME
    # Locked, not just this address: the right password from elsewhere is refused, unchecked.
    elsewhere = Client(REMOTE_ADDR=ANOTHER_ADDRESS)
    response = sign_in(elsewhere)
    assert "Too many failed sign-ins" in response.content.decode()
    assert me(elsewhere)["authenticated"] is False
    assert len(password_checks) == settings.LOGIN_FAILURES_PER_USERNAME


def test_a_locked_account_signs_in_again_once_the_window_has_passed(ada, password_checks, settings):
    settings.LOGIN_FAILURE_WINDOW = 2
    for _ in range(settings.LOGIN_FAILURES_PER_USERNAME):
        sign_in(Client(), password="wrong")
    elsewhere = Client(REMOTE_ADDR=ANOTHER_ADDRESS)
    assert sign_in(elsewhere).status_code == 200  # locked

    # Each try counts too, but cannot push the window on: it is the key's expiry, set once.
    wait_until(lambda: sign_in(elsewhere).status_code == 302, timeout=15, interval=0.25)

    assert me(elsewhere) == {"authenticated": True, "username": "ada"}


def test_a_successful_sign_in_clears_the_usernames_count(client, ada, password_checks, settings):
    limit = settings.LOGIN_FAILURES_PER_USERNAME
    for _ in range(limit - 1):
        sign_in(client, password="wrong")
    assert sign_in(client).status_code == 302
    client.post("/accounts/logout/")
    checked_before = len(password_checks)

    responses = [sign_in(client, password="wrong") for _ in range(limit + 1)]

    assert len(password_checks) - checked_before == limit  # all but the last one checked
    assert "Too many failed sign-ins" not in responses[0].content.decode()
    assert "Too many failed sign-ins" in responses[-1].content.decode()


def test_the_address_keeps_its_failures_after_a_success(client, ada, settings):
    settings.LOGIN_FAILURES_PER_ADDRESS = 5
    for _ in range(4):
        sign_in(client, password="wrong")
    assert sign_in(client).status_code == 302
    client.post("/accounts/logout/")

    fifth = sign_in(client, username="nobody", password="wrong")
    sixth = sign_in(client)

    assert "Too many failed sign-ins" in fifth.content.decode()  # the fifth failure: now paused
    assert sixth.status_code == 200 and "Too many failed sign-ins" in sixth.content.decode()


def test_successful_sign_ins_do_not_count_against_the_address(ada, settings):
    settings.LOGIN_FAILURES_PER_ADDRESS = 3

    codes = [sign_in(Client()).status_code for _ in range(6)]  # e.g. one office behind one NAT address

    assert codes == [302] * 6


def test_sign_in_goes_through_and_logs_when_redis_is_down(client, ada, settings, caplog):
    down = {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": f"redis://127.0.0.1:{free_port()}/0"}
    settings.CACHES = {**settings.CACHES, "default": down}

    assert sign_in(client, password="wrong").status_code == 200
    response = sign_in(client)

    assert response.status_code == 302
    assert "login throttle unavailable; letting the attempt through" in caplog.text
