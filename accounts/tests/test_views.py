"""Sign-up, sign-in, password changes, throttling and the sessions page."""

from __future__ import annotations

import re

import pytest
from django.contrib.messages import get_messages
from django.core import mail
from django.test import Client

from cart.cart import CART_SESSION_KEY
from durable_sessions.models import UserSession
from durable_sessions.stamps import is_ended
from harness.testing import PASSWORD, session_cached, session_row, sign_in
from shop.models import Order
from shop.recently_viewed import RECENTLY_VIEWED_SESSION_KEY

pytestmark = pytest.mark.django_db


def me(client) -> dict:
    return client.get("/accounts/me.json").json()


def lines(client) -> dict:
    return client.get("/cart/summary.json").json()["lines"]


def in_redis(key: str) -> bool:
    value = session_cached(key)
    return value is not None and not is_ended(value)  # an ended session leaves a tombstone


def test_me_json_for_anonymous_and_signed_in(client, ada):
    assert me(client) == {"authenticated": False, "username": None}
    sign_in(client)
    assert me(client) == {"authenticated": True, "username": "ada"}


def test_signup_creates_the_account_signs_in_and_keeps_the_basket(client, make_product):
    kite = make_product(name="Kite")
    client.post(f"/cart/add/{kite.pk}/", {"quantity": "2"})

    response = client.post(
        "/accounts/signup/",
        {"username": "grace", "email": "grace@example.com", "password1": PASSWORD, "password2": PASSWORD},
    )

    assert response.status_code == 302 and response["Location"] == "/accounts/"
    assert me(client) == {"authenticated": True, "username": "grace"}
    assert lines(client) == {str(kite.pk): 2}


def test_signup_applies_password_validators(client):
    response = client.post(
        "/accounts/signup/", {"username": "bob", "email": "bob@example.com", "password1": "123", "password2": "123"}
    )

    assert response.status_code == 200
    assert "too short" in response.content.decode()
    assert me(client)["authenticated"] is False


def test_sign_in_keeps_basket_and_recently_viewed_and_rotates_the_key(client, ada, make_product):
    kite = make_product(name="Kite")
    client.get(kite.get_absolute_url())  # sets the CSRF cookie
    client.get(kite.get_absolute_url())  # remembered: the visitor keeps cookies
    client.post(f"/cart/add/{kite.pk}/")
    anonymous_key = client.session.session_key

    response = sign_in(client)

    assert response.status_code == 302
    new_key = client.session.session_key
    assert new_key != anonymous_key
    assert session_row(anonymous_key) is None and not in_redis(anonymous_key)
    assert client.session[CART_SESSION_KEY] == {str(kite.pk): {"quantity": 1, "price": "9.99"}}
    assert client.session[RECENTLY_VIEWED_SESSION_KEY] == [kite.pk]
    assert session_row(new_key).user == ada


def test_sign_in_merges_the_basket_left_on_another_device(client, ada, make_product):
    kite, mug, lamp = make_product(name="Kite", stock=3), make_product(name="Mug"), make_product(name="Lamp")
    phone = Client()
    sign_in(phone)
    phone.post(f"/cart/add/{kite.pk}/", {"quantity": "3"})
    phone.post(f"/cart/add/{lamp.pk}/", {"quantity": "1"})
    client.post(f"/cart/add/{kite.pk}/", {"quantity": "1"})
    client.post(f"/cart/add/{mug.pk}/", {"quantity": "4"})
    client.post(f"/cart/add/{lamp.pk}/", {"quantity": "2"})

    response = sign_in(client)

    # Per product the larger quantity: kite 3 (phone), mug 4 (here), lamp 2 (here).
    assert lines(client) == {str(kite.pk): 3, str(mug.pk): 4, str(lamp.pk): 2}
    texts = [str(m) for m in get_messages(response.wsgi_request)]
    assert any("another device: 2 × Kite" in t for t in texts)


def test_merge_is_capped_by_stock(client, ada, make_product):
    kite = make_product(name="Kite", stock=5)
    phone = Client()
    sign_in(phone)
    phone.post(f"/cart/add/{kite.pk}/", {"quantity": "5"})
    kite.stock = 2
    kite.save()

    sign_in(client)

    assert lines(client) == {str(kite.pk): 2}


def test_sign_out_is_post_only_and_ends_the_session_everywhere(client, ada):
    sign_in(client)
    key = client.session.session_key

    assert client.get("/accounts/logout/").status_code == 405
    client.post("/accounts/logout/")

    assert me(client)["authenticated"] is False
    assert session_row(key) is None and not in_redis(key)


def test_password_change_ends_other_sessions_and_keeps_this_one(client, ada):
    laptop, phone = Client(), Client()
    for device in (client, laptop, phone):
        sign_in(device)

    response = client.post(
        "/accounts/password_change/",
        {"old_password": PASSWORD, "new_password1": "another-Long-phrase-7", "new_password2": "another-Long-phrase-7"},
    )

    assert response.status_code == 302
    assert me(client)["authenticated"] is True
    assert me(laptop)["authenticated"] is False and me(phone)["authenticated"] is False
    assert UserSession.objects.filter(user=ada).count() == 1


def test_password_reset_by_email_ends_every_session(client, ada):
    phone = Client()
    sign_in(phone)

    client.post("/accounts/password_reset/", {"email": "ada@example.com"})
    link = re.search(r"http://testserver(/accounts/reset/\S+/)", mail.outbox[0].body).group(1)
    form_url = client.get(link)["Location"]
    response = client.post(form_url, {"new_password1": "brand-New-phrase-9", "new_password2": "brand-New-phrase-9"})

    assert response.status_code == 302
    assert me(phone)["authenticated"] is False
    assert not UserSession.objects.filter(user=ada).exists()
    assert sign_in(client, password="brand-New-phrase-9").status_code == 302


def test_failed_sign_ins_are_throttled_per_username(client, ada, settings):
    for _ in range(settings.LOGIN_FAILURES_PER_USERNAME):
        assert sign_in(client, password="wrong").status_code == 200

    response = sign_in(client)  # right password, but too late

    assert response.status_code == 200
    assert "Too many failed sign-ins" in response.content.decode()
    assert me(client)["authenticated"] is False


def test_failed_sign_ins_are_throttled_per_address(client, ada, settings):
    for i in range(settings.LOGIN_FAILURES_PER_ADDRESS):
        sign_in(client, username=f"nobody{i}", password="wrong")

    assert "Too many failed sign-ins" in sign_in(client).content.decode()
    other_address = Client(REMOTE_ADDR="198.51.100.20")
    assert sign_in(other_address).status_code == 302


def test_admin_sign_in_is_throttled_too(client, django_user_model, settings):
    django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    for _ in range(settings.LOGIN_FAILURES_PER_USERNAME):
        client.post("/admin/login/", {"username": "root", "password": "wrong"})

    response = client.post("/admin/login/?next=/admin/", {"username": "root", "password": PASSWORD})

    assert response.status_code == 200  # the form again, not the redirect


def test_account_page_lists_the_users_orders(client, ada):
    Order.objects.create(user=ada, name="Ada", email="a@example.com", address="x", total="12.00")
    Order.objects.create(name="Someone else", email="s@example.com", address="y", total="99.00")
    sign_in(client)

    page = client.get("/accounts/").content.decode()

    assert "£12.00" in page and "£99.00" not in page
    assert client.get("/accounts/", follow=False).status_code == 200
    assert Client().get("/accounts/")["Location"].startswith("/accounts/login/")


def test_sessions_page_lists_live_sessions_and_marks_this_one(client, ada):
    phone = Client(HTTP_USER_AGENT="Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148 Safari/604.1")
    sign_in(phone)
    sign_in(client)

    page = client.get("/accounts/sessions/").content.decode()

    assert page.count("<tr") == 3  # header + two sessions
    assert "This session" in page and "iOS" in page and "Mobile" in page
    assert phone.session.session_key not in page and client.session.session_key not in page


def test_sessions_page_ends_another_session(client, ada):
    phone = Client()
    sign_in(phone)
    sign_in(client)
    page = client.get("/accounts/sessions/").content.decode()
    public_id = re.search(r"/accounts/sessions/([0-9a-f]+)/end/", page).group(1)

    response = client.post(f"/accounts/sessions/{public_id}/end/")

    assert response.status_code == 302
    assert me(phone)["authenticated"] is False and me(client)["authenticated"] is True
    assert client.post("/accounts/sessions/deadbeef/end/").status_code == 404


def test_sessions_page_ends_all_others(client, ada):
    others = [Client(), Client()]
    for device in [*others, client]:
        sign_in(device)

    client.post("/accounts/sessions/end-others/")

    assert [me(device)["authenticated"] for device in others] == [False, False]
    assert me(client)["authenticated"] is True


def test_sessions_that_cannot_sign_in_are_not_listed_and_are_pruned(client, ada):
    old_phone = Client()
    sign_in(old_phone)
    stale_key = old_phone.session.session_key
    ada.set_password("changed-Elsewhere-5")  # e.g. by an administrator: old hashes go stale
    ada.save()
    sign_in(client, password="changed-Elsewhere-5")

    page = client.get("/accounts/sessions/").content.decode()

    assert page.count("<tr") == 2
    assert session_row(stale_key) is None
