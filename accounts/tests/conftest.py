from __future__ import annotations

import pytest
from django.core.cache import cache

PASSWORD = "a-long-Passphrase-42"


@pytest.fixture(autouse=True)
def forget_login_failures():
    """Each test starts with no failed sign-ins counted (the counters live in Redis)."""
    cache.delete_pattern("*login-failures:*")
    yield
    cache.delete_pattern("*login-failures:*")


@pytest.fixture
def ada(django_user_model):
    return django_user_model.objects.create_user("ada", email="ada@example.com", password=PASSWORD)


def sign_in(client, username: str = "ada", password: str = PASSWORD):
    return client.post("/accounts/login/", {"username": username, "password": password})
