"""Share the accounts tests' fixtures: counting password checks."""

from __future__ import annotations

import pytest

from accounts.models import User


@pytest.fixture
def password_checks(monkeypatch) -> list[str]:
    """Record the username of every password check (``User.check_password``), from any thread.

    The checks still run: this counts the hashing the throttle must prevent, it does not replace it.
    """
    checked: list[str] = []
    check_password = User.check_password

    def counted(user, raw_password):
        checked.append(user.get_username())
        return check_password(user, raw_password)

    monkeypatch.setattr(User, "check_password", counted)
    return checked
