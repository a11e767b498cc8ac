"""The admin site: its sign-in and password change go through the sign-in throttle."""

from __future__ import annotations

import pytest

from harness.testing import PASSWORD

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "another-Long-phrase-7"


@pytest.fixture
def root(django_user_model, forget_login_failures):
    return django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)


def change_password(client, old_password: str):
    return client.post(
        "/admin/password_change/",
        {"old_password": old_password, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )


def test_admin_password_change_is_throttled(client, root, password_checks, settings):
    client.force_login(root)
    limit = settings.LOGIN_FAILURES_PER_USERNAME

    wrong = [change_password(client, "wrong") for _ in range(limit)]
    response = change_password(client, PASSWORD)  # right, but too late

    assert "Your old password was entered incorrectly" in wrong[0].content.decode()
    assert response.status_code == 200
    assert "Too many failed sign-ins" in response.content.decode()
    assert len(password_checks) == limit  # the last one was refused unchecked
    root.refresh_from_db()
    assert root.check_password(PASSWORD)


def test_admin_password_change_still_changes_the_password(client, root):
    client.force_login(root)

    response = change_password(client, PASSWORD)

    assert response.status_code == 302 and response["Location"] == "/admin/password_change/done/"
    root.refresh_from_db()
    assert root.check_password(NEW_PASSWORD)


def test_admin_sign_in_lockout_says_when_to_try_again(client, root, settings):
    for _ in range(settings.LOGIN_FAILURES_PER_USERNAME):
        client.post("/admin/login/", {"username": "root", "password": "wrong"})

    response = client.post("/admin/login/?next=/admin/", {"username": "root", "password": PASSWORD})

    assert response.status_code == 200
    assert "Too many failed sign-ins for this account or from your address. Try again in 15 minutes" in (
        response.content.decode()
    )
