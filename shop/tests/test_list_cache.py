"""List pages served from the cache: what they cost, and that they change when the catalogue does."""

from __future__ import annotations

import uuid

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from config.caches import build_caches
from durable_sessions.sealing import seal
from shop.list_cache import GENERATION_KEY, LIST_CACHE_PREFIX, PRODUCTS_PER_PAGE
from shop.models import Category, Product
from shop.product_cache import CONTENT_GENERATION_KEY, PRODUCT_CACHE_PREFIX, products_forget, products_get
from shop.product_cache import ENTRY_SALT as PRODUCT_SALT

pytestmark = pytest.mark.django_db
LIST_PAGES = ["/", "/category/garden/", "/search/?q=product"]


def queries(client, path: str) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(path).status_code == 200
    return [q["sql"] for q in captured.captured_queries]


def counts(sql: list[str]) -> int:
    return sum("COUNT(" in q.upper() for q in sql)


def product_form(*, category: int, name: str, slug: str, price: str = "3.00", active: bool = True) -> dict:
    """Return the admin's product form, filled in."""
    form = {"category": category, "name": name, "slug": slug, "description": "", "price": price, "stock": 7}
    return form | ({"is_active": "on"} if active else {})


@pytest.mark.parametrize("path", LIST_PAGES)
def test_a_list_page_runs_no_sql_once_cached(client, make_product, path):
    for _ in range(30):
        make_product()
    first = queries(client, path)

    assert first and queries(client, path) == []
    assert queries(client, path + ("&" if "?" in path else "?") + "page=2")  # another page: its own entry


@pytest.mark.parametrize("path", LIST_PAGES)
def test_a_cold_list_page_runs_the_same_queries_whatever_the_catalogue_size_and_the_page(client, make_product, path):
    sep = "&" if "?" in path else "?"
    for _ in range(PRODUCTS_PER_PAGE + 1):
        make_product()
    small = len(queries(client, path))
    for _ in range(5 * PRODUCTS_PER_PAGE):
        make_product()  # each one starts a new generation: every page below is cold

    assert len(queries(client, path)) == small
    assert len(queries(client, f"{path}{sep}page=6")) == small - 2  # the categories and the count are cached


def test_the_count_runs_once_per_list_not_per_page(client, make_product):
    for _ in range(3 * PRODUCTS_PER_PAGE):
        make_product()

    assert counts(queries(client, "/")) == 1
    assert counts(queries(client, "/?page=2")) == 0
    assert counts(queries(client, "/?page=3")) == 0


def test_stock_taken_at_checkout_shows_on_the_cached_list(client, make_product):
    kite = make_product(name="Kite", stock=6)
    assert "Only" not in client.get("/").content.decode()

    client.post(f"/cart/add/{kite.pk}/", {"quantity": 2})
    placed = client.post(
        "/checkout/", {"name": "Ada", "email": "ada@example.com", "address": "1 Lane", "token": str(uuid.uuid4())}
    )

    assert placed.status_code == 302
    assert "Only 4 left" in client.get("/").content.decode()
    assert "Only 4 left" in client.get("/category/garden/").content.decode()


def test_admin_edits_show_on_every_cached_list(admin_client, client, make_product):
    mug = make_product(name="Mug", slug="mug")
    for path in LIST_PAGES[:2]:
        assert "Mug" in client.get(path).content.decode()

    change = f"/admin/shop/product/{mug.pk}/change/"
    renamed = admin_client.post(change, product_form(category=mug.category_id, name="Beaker", slug="mug", price="4.50"))
    assert renamed.status_code == 302
    assert all("Beaker" in client.get(p).content.decode() for p in [*LIST_PAGES[:2], "/search/?q=beaker"])
    assert "£4.50" in client.get("/").content.decode()

    admin_client.post(change, product_form(category=mug.category_id, name="Beaker", slug="mug", active=False))
    assert all("Beaker" not in client.get(p).content.decode() for p in LIST_PAGES[:2])


def test_a_product_added_in_the_admin_is_listed_and_counted(admin_client, client, make_product, category):
    for _ in range(PRODUCTS_PER_PAGE):
        make_product()
    assert "Page 1 of" not in client.get("/").content.decode()

    added = admin_client.post(
        "/admin/shop/product/add/", product_form(category=category.pk, name="Aardvark Lamp", slug="aardvark-lamp")
    )
    assert added.status_code == 302

    page = client.get("/").content.decode()
    assert "Aardvark Lamp" in page and "Page 1 of 2" in page


def test_a_category_renamed_in_the_admin_shows_on_the_lists(admin_client, client, category, make_product):
    make_product()
    assert "Garden" in client.get("/").content.decode()

    admin_client.post(f"/admin/shop/category/{category.pk}/change/", {"name": "Allotment", "slug": "garden"})

    assert "Allotment" in client.get("/").content.decode()
    assert "Allotment" in client.get("/category/garden/").content.decode()


def test_forged_or_moved_entries_are_dropped(client, make_product, caplog):
    make_product(name="Kite")
    other = Category.objects.create(name="Kitchen", slug="kitchen")
    make_product(name="Mug", category=other)
    client.get("/category/garden/")
    client.get("/category/kitchen/")
    garden, kitchen = (f"{LIST_CACHE_PREFIX}category:{slug}:page:1" for slug in ("garden", "kitchen"))
    cache.set(kitchen, cache.get(garden))  # signed, but for another page

    page = client.get("/category/kitchen/").content.decode()
    assert ">Mug<" in page and ">Kite<" not in page

    mac, _, text = cache.get(garden).partition(":")
    cache.set(garden, f"{mac}:{text.replace('Kite', '<script>alert(1)</script>')}")
    page = client.get("/category/garden/").content.decode()
    assert "<script>alert" not in page and ">Kite<" in page
    assert "failed its MAC" in caplog.text


def test_lists_survive_a_lost_cache(client, make_product):
    make_product(name="Kite")
    client.get("/")
    cache.delete_many([GENERATION_KEY, CONTENT_GENERATION_KEY])

    assert ">Kite<" in client.get("/").content.decode()
    assert cache.get(GENERATION_KEY) and cache.get(CONTENT_GENERATION_KEY)
    make_product(name="Mug")
    assert ">Mug<" in client.get("/").content.decode()


def test_a_changed_product_is_rendered_again_without_sql(client, make_product):
    kite = make_product(name="Kite", stock=10)
    client.get("/")

    Product.objects.filter(pk=kite.pk).update(stock=2)
    products_forget([kite.pk])
    products_get([kite.pk])  # as a basket page would, between the change and the next list page

    assert queries(client, "/") == []
    assert "Only 2 left" in client.get("/").content.decode()


def test_odd_page_numbers_answer_a_page(client, make_product):
    for n in range(PRODUCTS_PER_PAGE + 1):
        make_product(name=f"Item {n:02}")

    assert "Page 2 of 2" in client.get("/?page=999999999999999999999").content.decode()
    assert "Page 1 of 2" in client.get("/?page=-3").content.decode()
    assert "Page 1 of 2" in client.get("/?page=%00").content.decode()
    assert client.get("/category/garden/?page=2").content.decode().count('class="card"') == 1
    assert client.get("/category/nope/").status_code == 404


def test_lists_are_served_from_postgresql_while_redis_is_down(client, make_product, redis_server):
    with override_settings(CACHES=build_caches(redis_server.url)):
        make_product(name="Kite")
        assert ">Kite<" in client.get("/").content.decode()
        redis_server.stop()

        for path in ("/", "/category/garden/", "/search/?q=kite"):
            assert ">Kite<" in client.get(path).content.decode()


def test_a_tampered_product_entry_is_read_again_from_postgresql(client, make_product):
    kite, mug = make_product(name="Kite"), make_product(name="Mug")
    products_get([kite.pk, mug.pk])
    key = f"{PRODUCT_CACHE_PREFIX}{kite.pk}"
    fields = {"id": kite.pk, "category_id": kite.category_id, "slug": "kite", "price": "9.99", "stock": 3}
    forged = [
        {**fields, "name": "Kite", "is_active": True},  # not sealed
        seal(key, {**fields, "name": 123, "is_active": True}, salt=PRODUCT_SALT),  # sealed, wrong types
        seal(key, {**fields, "name": "Kite", "is_active": True, "slug": "a/b"}, salt=PRODUCT_SALT),
        cache.get(f"{PRODUCT_CACHE_PREFIX}{mug.pk}"),  # sealed, another product's
    ]
    for entry in forged:
        cache.set(key, entry)
        assert products_get([kite.pk])[kite.pk].name == "Kite"
        cache.set(key, entry)
        products_forget([mug.pk])  # the lists render their products again
        page = client.get("/")
        assert page.status_code == 200 and ">Kite<" in page.content.decode()


def test_a_misspelt_search_finds_and_pages_through_the_corrected_words(client, make_product):
    for n in range(PRODUCTS_PER_PAGE + 3):
        make_product(name=f"Chocolate Bar {n:02}")
    make_product(name="Kite")

    first = client.get("/search/?q=choclate").content.decode()
    second = client.get("/search/?q=choclate&page=2").content.decode()

    assert "Page 1 of 2" in first and first.count('class="card"') == PRODUCTS_PER_PAGE
    assert second.count('class="card"') == 3 and "Kite" not in first + second
    assert 'href="?q=choclate&amp;page=2"' in first
