"""Session administration in the Django admin, on the real database and Redis."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from durable_sessions.models import UserSession
from durable_sessions.sealing import storage_key
from harness.testing import PASSWORD, sign_in

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/durable_sessions/usersession/"


@pytest.fixture
def admin_client(django_user_model):
    django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    client = Client()
    client.force_login(django_user_model.objects.get(username="root"))
    return client


def signed_in_devices(count: int, username: str = "ada") -> list[Client]:
    devices = [Client() for _ in range(count)]
    for device in devices:
        sign_in(device, username=username)
    return devices


def authenticated(device: Client) -> bool:
    return device.get("/accounts/me.json").json()["authenticated"]


def test_list_shows_sessions_with_user_client_and_basket(admin_client, ada, make_product):
    kite = make_product(name="Kite")
    (phone,) = signed_in_devices(1)
    phone.post(f"/cart/add/{kite.pk}/", {"quantity": "3"})

    page = admin_client.get(CHANGELIST).content.decode()

    assert storage_key(phone.session.session_key)[:8] + "…" in page
    assert phone.session.session_key not in page  # the cookie itself is never shown
    assert "ada" in page and "127.0.0.1" in page
    assert "£29.97" in page  # 3 × 9.99


def test_list_runs_constant_queries_whatever_the_number_of_sessions(admin_client, ada, django_user_model):
    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert admin_client.get(CHANGELIST).status_code == 200
        return len(ctx.captured_queries)

    signed_in_devices(2)
    few = queries()
    django_user_model.objects.create_user("bob", password=PASSWORD)
    signed_in_devices(10)
    signed_in_devices(5, username="bob")

    assert UserSession.objects.count() >= 18
    assert queries() == few


def test_filters_and_search(admin_client, ada, make_product):
    signed_in_devices(1)
    anonymous = Client()
    anonymous.post(f"/cart/add/{make_product().pk}/")

    signed = admin_client.get(CHANGELIST + "?signed_in=yes").context["cl"].result_count
    anon = admin_client.get(CHANGELIST + "?signed_in=no").context["cl"].result_count
    active = admin_client.get(CHANGELIST + "?status=active").context["cl"].result_count
    expired = admin_client.get(CHANGELIST + "?status=expired").context["cl"].result_count
    by_email = admin_client.get(CHANGELIST + "?q=ada@example").context["cl"].result_count
    by_ip = admin_client.get(CHANGELIST + "?q=127.0.0").context["cl"].result_count

    # The administrator's own session is signed in too.
    assert (signed, anon, active, expired, by_email) == (2, 1, 3, 0, 1)
    assert by_ip == 2


def test_detail_shows_decoded_data_with_the_auth_hash_masked(admin_client, ada):
    (phone,) = signed_in_devices(1)
    key = storage_key(phone.session.session_key)
    real_hash = phone.session["_auth_user_hash"]

    page = admin_client.get(f"{CHANGELIST}{key}/change/").content.decode()

    assert f"&quot;_auth_user_id&quot;: &quot;{ada.pk}&quot;" in page
    assert "(hidden)" in page and real_hash not in page
    assert 'name="_save"' not in page  # read-only


def test_detail_masks_every_key_the_shop_does_not_know(admin_client, make_product):
    from durable_sessions.backends.cached_db import SessionStore

    kite = make_product()
    store = SessionStore()
    store["cart"] = {str(kite.pk): {"quantity": 2, "price": "9.99"}}
    store["_password_reset_token"] = "set-password-token-1234"
    store["some_app_secret"] = "do-not-show-me"
    store.save()

    page = admin_client.get(f"{CHANGELIST}{store.storage_key()}/change/").content.decode()

    assert "set-password-token-1234" not in page and "do-not-show-me" not in page
    assert page.count("(hidden)") >= 2
    assert f"&quot;{kite.pk}&quot;: {{" in page  # the basket is shown
    assert "created_at" in page  # and the tier's stamps


def test_revoke_action_makes_the_very_next_request_anonymous(admin_client, ada):
    phone, laptop = signed_in_devices(2)

    selected = [storage_key(phone.session.session_key)]
    admin_client.post(CHANGELIST, {"action": "revoke_sessions", "_selected_action": selected})

    assert authenticated(phone) is False
    assert authenticated(laptop) is True


def test_sign_out_all_sessions_of_these_users(admin_client, ada, django_user_model):
    django_user_model.objects.create_user("bob", password=PASSWORD)
    ada_devices = signed_in_devices(3)
    (bob,) = signed_in_devices(1, username="bob")

    admin_client.post(
        CHANGELIST, {"action": "sign_out_users", "_selected_action": [storage_key(ada_devices[0].session.session_key)]}
    )

    assert [authenticated(d) for d in ada_devices] == [False, False, False]
    assert authenticated(bob) is True


def test_deleting_in_the_admin_evicts_the_cache(admin_client, ada):
    (phone,) = signed_in_devices(1)
    key = storage_key(phone.session.session_key)

    admin_client.post(f"{CHANGELIST}{key}/delete/", {"post": "yes"})

    assert authenticated(phone) is False


def test_staff_without_permission_cannot_see_sessions(django_user_model):
    clerk = django_user_model.objects.create_user("clerk", password=PASSWORD, is_staff=True)
    client = Client()
    client.force_login(clerk)

    assert client.get(CHANGELIST).status_code == 403
    clerk.user_permissions.add(Permission.objects.get(codename="view_usersession"))
    assert client.get(CHANGELIST).status_code == 200
