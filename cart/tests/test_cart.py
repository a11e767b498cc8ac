"""The Cart service: every rule, Decimal math, JSON-safe session data."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.contrib.sessions.backends.base import SessionBase

from cart.cart import CART_SESSION_KEY, Cart, InvalidQuantity, NotEnoughStock, parse_quantity
from shop.models import Category, Product
from shop.product_cache import products_forget


class MemorySession(SessionBase):
    """A session that lives only in this object, for rules that need no store."""

    def load(self):
        return {}


def product(pk: int = 1, *, price: str = "9.99", stock: int = 10, name: str = "Kite") -> Product:
    return Product(pk=pk, name=name, slug=f"p{pk}", price=Decimal(price), stock=stock, category=Category(pk=1))


@pytest.fixture
def cart() -> Cart:
    return Cart(MemorySession())


@pytest.mark.parametrize("raw", ["", None, "abc", "1.5", "1e3", "--2", "9999999", " ", "0x10"])
def test_parse_quantity_rejects_what_is_not_a_whole_number(raw):
    with pytest.raises(InvalidQuantity, match="whole number"):
        parse_quantity(raw)


@pytest.mark.parametrize(("raw", "expected"), [("1", 1), (" 3 ", 3), ("+2", 2), ("99", 99), ("007", 7)])
def test_parse_quantity_reads_whole_numbers(raw, expected):
    assert parse_quantity(raw) == expected


def test_parse_quantity_refuses_zero_and_negative_unless_zero_is_allowed():
    with pytest.raises(InvalidQuantity, match="at least 1"):
        parse_quantity("0")
    with pytest.raises(InvalidQuantity):
        parse_quantity("-1")
    with pytest.raises(InvalidQuantity, match="negative"):
        parse_quantity("-1", allow_zero=True)
    assert parse_quantity("0", allow_zero=True) == 0


def test_add_keeps_json_primitives_in_the_session(cart):
    cart.add(product(7, price="12.50"), quantity=2)

    stored = cart.session[CART_SESSION_KEY]
    assert stored == {"7": {"quantity": 2, "price": "12.50"}}
    assert json.loads(json.dumps(stored)) == stored


def test_add_accumulates_and_keeps_the_first_price(cart):
    cart.add(product(1, price="5.00"), quantity=1)
    cart.add(product(1, price="6.00"), quantity=2)

    assert cart.session[CART_SESSION_KEY]["1"] == {"quantity": 3, "price": "5.00"}


def test_add_beyond_stock_is_refused_and_changes_nothing(cart):
    kite = product(1, stock=3)
    cart.add(kite, quantity=2)

    with pytest.raises(NotEnoughStock, match="at most 3"):
        cart.add(kite, quantity=2)
    assert cart.quantity_of(1) == 2


def test_a_line_is_capped_at_99_whatever_the_stock(cart):
    plenty = product(1, stock=500)

    assert cart.add(plenty, quantity=99) == 99
    with pytest.raises(NotEnoughStock, match="at most 99"):
        cart.add(plenty, quantity=1)


def test_out_of_stock_product_cannot_be_added(cart):
    with pytest.raises(NotEnoughStock, match="out of stock"):
        cart.add(product(1, stock=0))
    assert cart.item_count == 0


def test_add_refuses_zero_or_negative(cart):
    for quantity in (0, -3):
        with pytest.raises(InvalidQuantity):
            cart.add(product(1), quantity=quantity)
    assert CART_SESSION_KEY not in cart.session


def test_update_sets_quantity_and_zero_removes(cart):
    kite = product(1, price="4.00")
    cart.add(kite, quantity=1)

    cart.update(kite, quantity=5)
    assert cart.session[CART_SESSION_KEY]["1"] == {"quantity": 5, "price": "4.00"}

    cart.update(kite, quantity=0)
    assert cart.quantity_of(1) == 0
    assert cart.session[CART_SESSION_KEY] == {}


def test_update_beyond_stock_or_negative_changes_nothing(cart):
    kite = product(1, stock=4)
    cart.add(kite, quantity=2)

    with pytest.raises(NotEnoughStock):
        cart.update(kite, quantity=5)
    with pytest.raises(InvalidQuantity):
        cart.update(kite, quantity=-1)
    assert cart.quantity_of(1) == 2


def test_remove_and_clear(cart):
    cart.add(product(1))
    cart.add(product(2))

    assert cart.remove(1) is True
    assert cart.remove(1) is False
    assert cart.product_ids() == [2]
    cart.clear()
    assert cart.item_count == 0


def test_item_count_sums_quantities(cart):
    cart.add(product(1), quantity=2)
    cart.add(product(2), quantity=3)

    assert cart.item_count == 5


def test_malformed_session_data_is_ignored(cart):
    cart.session[CART_SESSION_KEY] = {
        "1": {"quantity": 2, "price": "1.00"},
        "x": {},
        "3": "junk",
        "4": {"quantity": "9"},
    }

    assert cart.product_ids() == [1]
    cart.session[CART_SESSION_KEY] = ["not", "a", "dict"]
    assert cart.item_count == 0


@pytest.mark.django_db
def test_totals_use_current_prices_in_exact_decimals(make_product, change_product):
    a = make_product(price=Decimal("0.10"))
    b = make_product(price=Decimal("19.99"))
    cart = Cart(MemorySession())
    cart.add(a, quantity=3)
    cart.add(b, quantity=1)
    change_product(b.pk, price=Decimal("17.49"))

    contents = cart.contents()

    line_b = next(line for line in contents.lines if line.product.pk == b.pk)
    assert line_b.price_changed and line_b.added_price == Decimal("19.99") and line_b.unit_price == Decimal("17.49")
    assert contents.total == Decimal("17.79")
    assert isinstance(contents.total, Decimal)
    assert cart.summary() == {"items": 4, "lines": {str(a.pk): 3, str(b.pk): 1}, "total": "17.79"}


@pytest.mark.django_db
def test_inactive_and_deleted_products_are_reported_unavailable(make_product, change_product):
    keep, hidden, gone = make_product(), make_product(name="Hidden"), make_product()
    cart = Cart(MemorySession())
    for p in (keep, hidden, gone):
        cart.add(p)
    change_product(hidden.pk, is_active=False)
    gone_pk = gone.pk
    gone.delete()
    products_forget([gone_pk])

    contents = cart.contents()

    assert [line.product.pk for line in contents.lines] == [keep.pk]
    assert sorted(contents.unavailable) == sorted([(hidden.pk, "Hidden"), (gone_pk, None)])


@pytest.mark.parametrize(
    "line",
    [
        {"²": {"quantity": 1, "price": "1.00"}},
        {"0": {"quantity": 1, "price": "1.00"}},
        {"5": {"quantity": -3, "price": "1.00"}},
        {"5": {"quantity": True, "price": "1.00"}},
        {"5": {"quantity": 100, "price": "1.00"}},
    ],
)
def test_tampered_lines_are_dropped(cart, line):
    cart.session[CART_SESSION_KEY] = line

    assert cart.product_ids() == []


@pytest.mark.parametrize("price", [None, "abc", "NaN", "-1", {"x": 1}])
def test_a_tampered_price_is_never_trusted(cart, price):
    cart.session[CART_SESSION_KEY] = {"5": {"quantity": 2, "price": price}}

    assert cart._data() == {"5": {"quantity": 2, "price": "0.00"}}
