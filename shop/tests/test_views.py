"""Catalogue pages: listing, search, detail, recently viewed, constant queries."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from shop.list_cache import catalogue_changed
from shop.models import Category, Product
from shop.recently_viewed import RECENTLY_VIEWED_MAX, RECENTLY_VIEWED_SESSION_KEY

pytestmark = pytest.mark.django_db


def test_home_lists_categories_and_products_paginated(client, make_product):
    for i in range(30):
        make_product(name=f"Item {i:02d}")

    first = client.get("/").content.decode()
    second = client.get("/?page=2").content.decode()

    assert "Garden" in first and "Item 00" in first and "Item 23" in first and "Item 24" not in first
    assert "Item 24" in second and "Page 2 of 2" in second
    assert client.get("/?page=junk").status_code == 200


def test_category_page_lists_only_its_products(client, make_product):
    other = Category.objects.create(name="Kitchen", slug="kitchen")
    catalogue_changed()
    make_product(name="Trowel")
    make_product(name="Whisk", category=other)

    page = client.get("/category/kitchen/").content.decode()

    assert "Whisk" in page and "Trowel" not in page
    assert client.get("/category/nope/").status_code == 404


def test_search_matches_name_and_description(client, make_product):
    make_product(name="Blue Kite", description="Flies well")
    make_product(name="Red Mug", description="Holds tea; a kite on the side")
    make_product(name="Spade")

    page = client.get("/search/?q=KITE").content.decode()

    assert "Blue Kite" in page and "Red Mug" in page and "Spade" not in page
    assert client.get("/search/?q=").status_code == 200
    assert client.get("/search/?q=" + "x" * 5000).status_code == 200


def test_product_detail_has_an_add_form(client, make_product):
    product = make_product(name="Kite", stock=4)

    page = client.get(product.get_absolute_url()).content.decode()

    assert f'action="/cart/add/{product.pk}/"' in page
    assert 'name="quantity"' in page and 'max="4"' in page
    assert '<label for="quantity">' in page


def test_out_of_stock_product_has_no_add_form(client, make_product):
    product = make_product(stock=0)

    page = client.get(product.get_absolute_url()).content.decode()

    assert "Out of stock" in page and "/cart/add/" not in page


def test_inactive_product_is_404_and_not_listed(client, make_product):
    hidden = make_product(name="Hidden Thing", is_active=False)

    assert client.get(hidden.get_absolute_url()).status_code == 404
    assert "Hidden Thing" not in client.get("/").content.decode()
    assert "Hidden Thing" not in client.get("/search/?q=hidden").content.decode()


def test_recently_viewed_keeps_last_eight_newest_first(client, make_product):
    products = [make_product(name=f"Viewed {i}") for i in range(10)]
    for product in products:
        client.get(product.get_absolute_url())
    client.get(products[3].get_absolute_url())

    ids = client.session[RECENTLY_VIEWED_SESSION_KEY]
    assert ids[0] == products[3].pk
    assert len(ids) == RECENTLY_VIEWED_MAX
    assert ids[1:4] == [products[9].pk, products[8].pk, products[7].pk]
    home = client.get("/").content.decode()
    assert "Recently viewed" in home and "Viewed 9" in home
    detail = client.get(products[5].get_absolute_url()).content.decode()
    assert "Viewed 3" in detail


def test_recently_viewed_drops_products_that_became_inactive(client, make_product, change_product):
    a, b = make_product(name="Alpha"), make_product(name="Beta")
    client.get(a.get_absolute_url())
    client.get(b.get_absolute_url())
    change_product(a.pk, is_active=False)

    section = client.get("/").content.decode().split("Recently viewed")[1].split("</section>")[0]

    assert "Beta" in section and "Alpha" not in section


def test_seed_shop_loads_a_varied_catalogue_once():
    call_command("seed_shop")
    counts = (Category.objects.count(), Product.objects.count())
    call_command("seed_shop")

    assert (Category.objects.count(), Product.objects.count()) == counts
    assert counts[0] >= 8 and counts[1] >= 200
    assert Product.objects.filter(stock=0).exists()
    assert Product.objects.values("price").distinct().count() > 100


def test_seed_shop_if_empty_leaves_an_existing_catalogue(make_product):
    make_product()

    call_command("seed_shop", "--if-empty")

    assert Product.objects.count() == 1


def test_search_with_a_nul_byte_is_answered(client, make_product):
    make_product(name="Kite")

    assert client.get("/search/?q=ki%00te").status_code == 200


def test_a_visitor_without_cookies_leaves_no_session_behind(make_product):
    from django.test import Client

    from durable_sessions.models import UserSession

    product = make_product()
    for _ in range(3):
        crawler = Client()  # a fresh cookie jar every time
        assert crawler.get(product.get_absolute_url()).status_code == 200

    assert UserSession.objects.count() == 0
