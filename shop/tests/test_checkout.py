"""Checkout: one transaction, row-locked stock, one order per form."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.test import Client

from cart.cart import CART_SESSION_KEY
from shop.models import Order, Product

pytestmark = pytest.mark.django_db

CUSTOMER = {"name": "Ada Lovelace", "email": "ada@example.com", "address": "12 Analytical Row\nLondon"}


@pytest.fixture
def filled(client, make_product):
    kite = make_product(name="Kite", price=Decimal("12.50"), stock=5)
    mug = make_product(name="Mug", price=Decimal("3.35"), stock=10)
    client.post(f"/cart/add/{kite.pk}/", {"quantity": "2"})
    client.post(f"/cart/add/{mug.pk}/", {"quantity": "3"})
    return kite, mug


def checkout(client, **fields):
    return client.post("/checkout/", {**CUSTOMER, "token": str(uuid.uuid4()), **fields})


def test_empty_basket_cannot_check_out(client):
    response = client.get("/checkout/")

    assert response.status_code == 302 and response["Location"] == "/cart/"


def test_checkout_form_lists_the_basket(client, filled):
    page = client.get("/checkout/").content.decode()

    assert '<label for="id_name">Full name:</label>' in page
    assert "2 × Kite" in page and "£35.05" in page
    assert 'name="token"' in page


def test_checkout_form_is_prefilled_for_a_signed_in_user(client, filled, django_user_model):
    user = django_user_model.objects.create_user("ada", email="ada@example.com", first_name="Ada", last_name="L")
    client.force_login(user)

    page = client.get("/checkout/").content.decode()

    assert 'value="Ada L"' in page and 'value="ada@example.com"' in page


def test_placing_an_order_snapshots_prices_decrements_stock_and_empties_basket(client, filled):
    kite, mug = filled

    response = checkout(client)

    order = Order.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/orders/{order.pk}/"
    assert order.total == Decimal("35.05") and order.name == "Ada Lovelace"
    assert [(line.product_name, line.unit_price, line.quantity) for line in order.lines.all()] == [
        ("Kite", Decimal("12.50"), 2),
        ("Mug", Decimal("3.35"), 3),
    ]
    assert Product.objects.get(pk=kite.pk).stock == 3 and Product.objects.get(pk=mug.pk).stock == 7
    assert CART_SESSION_KEY not in client.session
    page = client.get(order.get_absolute_url()).content.decode()
    assert "Order #" in page and "Ada Lovelace" in page and "£35.05" in page


def test_insufficient_stock_writes_nothing(client, filled):
    kite, mug = filled
    Product.objects.filter(pk=kite.pk).update(stock=1)  # someone else bought them meanwhile

    response = checkout(client)

    assert response.status_code == 302 and response["Location"] == "/cart/"
    messages = [str(m) for m in get_messages(response.wsgi_request)]
    assert "only 1 of Kite left" in messages[-1]
    assert not Order.objects.exists()
    assert Product.objects.get(pk=mug.pk).stock == 10
    assert client.session[CART_SESSION_KEY].keys() == {str(kite.pk), str(mug.pk)}


def test_double_submitted_form_places_one_order(client, filled):
    token = str(uuid.uuid4())

    first = checkout(client, token=token)
    second = checkout(client, token=token)

    assert Order.objects.count() == 1
    assert first["Location"] == second["Location"] == Order.objects.get().get_absolute_url()
    assert Product.objects.get(pk=filled[0].pk).stock == 3


def test_invalid_form_shows_errors_next_to_fields(client, filled):
    response = checkout(client, email="not-an-email", name="")

    page = response.content.decode()
    assert response.status_code == 200
    assert 'id="id_email-error"' in page and 'id="id_name-error"' in page
    assert not Order.objects.exists()


def test_order_is_visible_only_to_its_session_or_owner(client, filled, django_user_model):
    checkout(client)
    order = Order.objects.get()

    assert Client().get(order.get_absolute_url()).status_code == 404
    owner = django_user_model.objects.create_user("ada")
    Order.objects.filter(pk=order.pk).update(user=owner)
    other_device = Client()
    other_device.force_login(owner)
    assert other_device.get(order.get_absolute_url()).status_code == 200
    stranger = Client()
    stranger.force_login(django_user_model.objects.create_user("eve"))
    assert stranger.get(order.get_absolute_url()).status_code == 404
    assert client.get("/orders/999999/").status_code == 404


def test_signed_in_order_belongs_to_the_user(client, filled, django_user_model):
    user = django_user_model.objects.create_user("ada")
    client.force_login(user)

    checkout(client)

    assert Order.objects.get().user == user


def test_an_overlong_email_is_a_form_error_not_a_crash(client, filled):
    response = checkout(client, email="a" * 300 + "@example.com")

    assert response.status_code == 200
    assert 'id="id_email-error"' in response.content.decode()
    assert not Order.objects.exists()


def test_the_session_keeps_only_its_latest_orders(client, filled):
    from durable_sessions.backends.cached_db import SessionStore
    from harness.testing import session_row
    from shop.services import ORDERS_KEPT_IN_SESSION, ORDERS_SESSION_KEY

    key = client.cookies["sessionid"].value
    session = SessionStore(key)
    session[ORDERS_SESSION_KEY] = list(range(1, ORDERS_KEPT_IN_SESSION + 1))  # as if it had ordered that often
    session.save()

    checkout(client)

    kept = session_row(key).get_decoded()[ORDERS_SESSION_KEY]
    newest = Order.objects.get().pk
    assert kept == [*range(2, ORDERS_KEPT_IN_SESSION + 1), newest]
    assert client.get(f"/orders/{newest}/").status_code == 200
