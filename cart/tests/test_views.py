"""Every basket URL, with good and bad input, on the real database and Redis."""

from __future__ import annotations

import secrets
from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.test import Client

from cart.cart import CART_SESSION_KEY

pytestmark = pytest.mark.django_db


def texts(response) -> list[str]:
    """Return the messages this response added (earlier ones were never shown)."""
    return [str(m) for m in get_messages(response.wsgi_request)][-1:]


def basket(client) -> dict:
    return client.get("/cart/summary.json").json()


@pytest.fixture
def kite(make_product):
    return make_product(name="Kite", price=Decimal("12.50"), stock=5)


def test_empty_basket_page(client):
    response = client.get("/cart/")

    assert response.status_code == 200
    assert b"Your basket is empty" in response.content
    assert basket(client) == {"items": 0, "lines": {}, "total": "0.00"}


def test_add_defaults_to_one_and_redirects_back_with_a_message(client, kite):
    response = client.post(f"/cart/add/{kite.pk}/", {"next": kite.get_absolute_url()})

    assert response.status_code == 302
    assert response["Location"] == kite.get_absolute_url()
    assert texts(response) == ["Added 1 × Kite to your basket (now 1)."]
    assert basket(client) == {"items": 1, "lines": {str(kite.pk): 1}, "total": "12.50"}


def test_add_with_quantity_and_page_shows_lines_and_totals(client, kite, make_product):
    mug = make_product(name="Mug", price=Decimal("3.35"))
    client.post(f"/cart/add/{kite.pk}/", {"quantity": "2"})
    client.post(f"/cart/add/{mug.pk}/", {"quantity": "3"})

    page = client.get("/cart/").content.decode()

    assert "£12.50" in page and "£25.00" in page  # unit price, line total
    assert "£3.35" in page and "£10.05" in page
    assert "£35.05" in page  # grand total
    assert 'value="2"' in page and 'value="3"' in page  # quantity inputs
    assert basket(client)["items"] == 5


@pytest.mark.parametrize(
    ("quantity", "message"),
    [
        ("abc", "Please enter the quantity as a whole number."),
        ("1.5", "Please enter the quantity as a whole number."),
        ("-2", "The quantity must be at least 1."),
        ("0", "The quantity must be at least 1."),
        ("6", "You can have at most 5 of Kite in your basket (5 in stock)."),
    ],
)
def test_bad_quantity_is_explained_and_changes_nothing(client, kite, quantity, message):
    client.post(f"/cart/add/{kite.pk}/", {"quantity": "1"})

    response = client.post(f"/cart/add/{kite.pk}/", {"quantity": quantity})

    assert response.status_code == 302
    assert texts(response) == [message]
    assert basket(client)["lines"] == {str(kite.pk): 1}


@pytest.mark.parametrize("url", ["/cart/add/{}/", "/cart/update/{}/", "/cart/remove/{}/"])
def test_unknown_product_is_404(client, url):
    assert client.post(url.format(999999), {"quantity": "1"}).status_code == 404
    assert client.post(url.format(2**70), {"quantity": "1"}).status_code == 404


def test_inactive_product_cannot_be_added(client, make_product):
    hidden = make_product(is_active=False)

    assert client.post(f"/cart/add/{hidden.pk}/").status_code == 404


def test_update_changes_quantity_and_zero_removes(client, kite):
    client.post(f"/cart/add/{kite.pk}/")

    response = client.post(f"/cart/update/{kite.pk}/", {"quantity": "4"})
    assert texts(response) == ["Kite: quantity set to 4."]
    assert basket(client)["lines"] == {str(kite.pk): 4}

    response = client.post(f"/cart/update/{kite.pk}/", {"quantity": "0"})
    assert texts(response) == ["Removed Kite from your basket."]
    assert basket(client)["lines"] == {}


@pytest.mark.parametrize("quantity", ["", "x", "-1", "7"])
def test_bad_update_changes_nothing(client, kite, quantity):
    client.post(f"/cart/add/{kite.pk}/", {"quantity": "2"})

    response = client.post(f"/cart/update/{kite.pk}/", {"quantity": quantity})

    assert response.status_code == 302
    assert texts(response)[0].startswith(("Please enter", "The quantity", "You can have at most"))
    assert basket(client)["lines"] == {str(kite.pk): 2}


def test_remove_and_clear(client, kite, make_product):
    other = make_product()
    client.post(f"/cart/add/{kite.pk}/")
    client.post(f"/cart/add/{other.pk}/")

    assert texts(client.post(f"/cart/remove/{kite.pk}/")) == ["Removed Kite from your basket."]
    assert basket(client)["lines"] == {str(other.pk): 1}
    assert texts(client.post("/cart/clear/")) == ["Your basket is empty."]
    assert basket(client)["items"] == 0


def test_a_deleted_product_can_still_be_removed(client, kite):
    client.post(f"/cart/add/{kite.pk}/")
    pk = kite.pk
    kite.delete()

    assert client.post(f"/cart/remove/{pk}/").status_code == 302
    assert client.session[CART_SESSION_KEY] == {}


def test_mutations_need_post(client, kite):
    for url in (f"/cart/add/{kite.pk}/", f"/cart/update/{kite.pk}/", f"/cart/remove/{kite.pk}/", "/cart/clear/"):
        assert client.get(url).status_code == 405


def test_missing_csrf_token_is_403_with_a_clear_page(kite):
    strict = Client(enforce_csrf_checks=True)

    response = strict.post(f"/cart/add/{kite.pk}/", {"quantity": "1"})

    assert response.status_code == 403
    assert b"That form has expired" in response.content
    assert strict.get("/cart/summary.json").json()["items"] == 0


def test_csrf_token_from_the_page_is_accepted(kite):
    strict = Client(enforce_csrf_checks=True)
    strict.get(kite.get_absolute_url())
    token = strict.cookies["csrftoken"].value

    response = strict.post(f"/cart/add/{kite.pk}/", {"quantity": "1", "csrfmiddlewaretoken": token})

    assert response.status_code == 302
    assert strict.get("/cart/summary.json").json()["items"] == 1


def test_changed_price_is_shown_old_to_new_and_total_uses_new(client, kite, change_product):
    client.post(f"/cart/add/{kite.pk}/", {"quantity": "2"})
    change_product(kite.pk, price=Decimal("10.00"))

    page = client.get("/cart/").content.decode()

    assert "<s>£12.50</s> → £10.00" in page
    assert basket(client)["total"] == "20.00"


def test_product_that_became_inactive_drops_out_with_a_notice(client, kite, make_product, change_product):
    other = make_product()
    client.post(f"/cart/add/{kite.pk}/")
    client.post(f"/cart/add/{other.pk}/")
    change_product(kite.pk, is_active=False)

    response = client.get("/cart/")

    assert "Kite is no longer available and was removed from your basket." in texts(response)
    assert client.session[CART_SESSION_KEY].keys() == {str(other.pk)}


def test_header_shows_item_count_on_every_page(client, kite):
    client.post(f"/cart/add/{kite.pk}/", {"quantity": "3"})

    for url in ("/", "/cart/", kite.get_absolute_url(), "/search/?q=kite", f"/category/{kite.category.slug}/"):
        assert b'<span id="basket-count">3</span>' in client.get(url).content, url


def test_redirect_back_refuses_other_sites(client, kite):
    response = client.post(f"/cart/add/{kite.pk}/", {"next": "https://evil.example/"})

    assert response["Location"] == "/cart/"


def test_oversized_form_is_rejected_and_changes_nothing(client, kite, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 50
    response = client.post(f"/cart/add/{kite.pk}/", {f"f{i}": "x" for i in range(100)})

    assert response.status_code == 400
    assert basket(client)["items"] == 0


def test_unread_messages_never_spill_into_the_session(client, make_product):
    # Random names: the messages cookie is compressed, so repetitive text would fit.
    products = [make_product(name=secrets.token_urlsafe(32)) for _ in range(60)]
    for product in products:  # far more unread messages than a cookie holds
        client.post(f"/cart/add/{product.pk}/", {"quantity": "1"})

    assert "_messages" not in client.session
    assert len(client.session[CART_SESSION_KEY]) == 60


def test_a_tampered_basket_still_renders(client, kite):
    client.post(f"/cart/add/{kite.pk}/")
    session = client.session
    session[CART_SESSION_KEY] = {str(kite.pk): {"quantity": 2, "price": None}, "²": {"quantity": 1}}
    session.save()

    assert client.get("/cart/").status_code == 200
    assert basket(client) == {"items": 2, "lines": {str(kite.pk): 2}, "total": "25.00"}
