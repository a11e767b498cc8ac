"""The sign-in and password-change forms: throttled, and saying when to try again."""

from __future__ import annotations

import pytest
from django.test import Client

from harness.testing import PASSWORD, sign_in

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "another-Long-phrase-7"


def change_password(client, old_password: str):
    return client.post(
        "/accounts/password_change/",
        {"old_password": old_password, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )


@pytest.mark.parametrize(("window", "when"), [(150, "3 minutes"), (50, "1 minute")])
def test_the_lockout_message_names_the_minutes_left_in_the_window(client, ada, settings, window, when):
    settings.LOGIN_FAILURE_WINDOW = window
    for _ in range(settings.LOGIN_FAILURES_PER_USERNAME):
        sign_in(client, password="wrong")
    # What is left is read from the counter's expiry, not from the setting.
    settings.LOGIN_FAILURE_WINDOW = 15 * 60

    page = sign_in(client).content.decode()

    assert f"Too many failed sign-ins for this account or from your address. Try again in {when}" in page


def test_the_attempt_that_reaches_the_limit_already_says_when_to_try_again(client, ada, settings):
    responses = [sign_in(client, password="wrong") for _ in range(settings.LOGIN_FAILURES_PER_USERNAME)]

    assert "Please enter a correct username and password" in responses[-2].content.decode()
    assert "Try again in 15 minutes" in responses[-1].content.decode()


def test_password_change_counts_old_password_checks_and_locks_after_the_limit(client, ada, password_checks, settings):
    sign_in(client)
    checked_before = len(password_checks)
    limit = settings.LOGIN_FAILURES_PER_USERNAME

    wrong = [change_password(client, "wrong") for _ in range(limit)]
    response = change_password(client, PASSWORD)  # right, but too late

    assert "Your old password was entered incorrectly" in wrong[0].content.decode()
    assert response.status_code == 200
    assert "Too many failed sign-ins" in response.content.decode()
    assert len(password_checks) - checked_before == limit  # the last one was refused unchecked
    ada.refresh_from_db()
    assert ada.check_password(PASSWORD)


def test_password_change_guesses_count_against_sign_in(client, ada, settings):
    sign_in(client)
    for _ in range(settings.LOGIN_FAILURES_PER_USERNAME):
        change_password(client, "wrong")

    response = sign_in(Client(REMOTE_ADDR="198.51.100.7"))

    assert "Too many failed sign-ins" in response.content.decode()


def test_password_change_with_the_right_old_password_clears_the_count(client, ada, password_checks, settings):
    sign_in(client)
    limit = settings.LOGIN_FAILURES_PER_USERNAME
    for _ in range(limit - 1):
        change_password(client, "wrong")
    assert change_password(client, PASSWORD).status_code == 302
    checked_before = len(password_checks)

    for _ in range(limit):
        sign_in(Client(), password="wrong")

    assert len(password_checks) - checked_before == limit
