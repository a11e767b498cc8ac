"""Keep a shopper's basket in their session and own every rule about it."""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from shop.models import Product
from shop.product_cache import products_get

CART_SESSION_KEY = "cart"
MAX_LINE_QUANTITY = 99
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]{1,6}")
_PRODUCT_ID = re.compile(r"[1-9][0-9]{0,17}")
_UNKNOWN_PRICE = "0.00"


def _price_text(value: object) -> str:
    """Return a price as stored, or 0.00 if it is not a price (only shown, never charged)."""
    try:
        price = Decimal(str(value))
    except InvalidOperation:
        return _UNKNOWN_PRICE
    return str(price) if price.is_finite() and price >= 0 else _UNKNOWN_PRICE


class CartError(Exception):
    """A change to the basket was refused; the message says why, for the shopper."""


class InvalidQuantity(CartError):
    """The quantity is not a whole number in the allowed range."""


class NotEnoughStock(CartError):
    """The basket would hold more of a product than can be sold."""


def parse_quantity(raw: Any, *, allow_zero: bool = False) -> int:
    """Return the quantity a form field holds, or raise InvalidQuantity."""
    text = str(raw if raw is not None else "").strip()
    if not _WHOLE_NUMBER.fullmatch(text):
        raise InvalidQuantity("Please enter the quantity as a whole number.")
    quantity = int(text)
    if quantity < 0 or (quantity == 0 and not allow_zero):
        raise InvalidQuantity(
            "The quantity must be at least 1." if not allow_zero else "The quantity cannot be negative."
        )
    return quantity


@dataclass(frozen=True)
class CartLine:
    product: Product
    quantity: int
    added_price: Decimal

    @property
    def unit_price(self) -> Decimal:
        """Return the current price: totals never use a stale one."""
        return self.product.price

    @property
    def price_changed(self) -> bool:
        return self.added_price != self.product.price

    @property
    def line_total(self) -> Decimal:
        return self.unit_price * self.quantity


@dataclass(frozen=True)
class CartContents:
    lines: list[CartLine]
    # Products in the session that can no longer be sold: (id, name or None if deleted).
    unavailable: list[tuple[int, str | None]] = field(default_factory=list)

    @property
    def total(self) -> Decimal:
        return sum((line.line_total for line in self.lines), Decimal("0.00"))

    @property
    def item_count(self) -> int:
        return sum(line.quantity for line in self.lines)


class Cart:
    """The basket held in ``session``: product id → quantity and the price when added.

    The session holds JSON primitives only: ``{"<id>": {"quantity": 2, "price": "9.99"}}``.
    Every read goes back to the session, so a Cart stays correct inside
    ``locked(session)``, which reloads the session under its lock. Any mapping
    with the session's data will do for reading, a stored session's decoded
    data too (the session admin's basket columns).
    """

    def __init__(self, session: MutableMapping[str, Any]) -> None:
        self.session = session

    # --- Reading ---------------------------------------------------------------------
    def _data(self) -> dict[str, dict[str, Any]]:
        return Cart._clean(self.session.get(CART_SESSION_KEY, {}))

    @staticmethod
    def _clean(raw: object) -> dict[str, dict[str, Any]]:
        """Keep only well-formed lines: the data may come from an older release, or be tampered with."""
        if not isinstance(raw, dict):
            return {}
        data = {}
        for key, line in raw.items():
            if not (isinstance(key, str) and _PRODUCT_ID.fullmatch(key) and isinstance(line, dict)):
                continue
            quantity = line.get("quantity")
            if type(quantity) is not int or not 1 <= quantity <= MAX_LINE_QUANTITY:
                continue
            data[key] = {"quantity": quantity, "price": _price_text(line.get("price"))}
        return data

    def quantity_of(self, product_id: int) -> int:
        return self._data().get(str(product_id), {}).get("quantity", 0)

    @property
    def item_count(self) -> int:
        """Return the number of items, from the session alone (no query)."""
        return sum(line["quantity"] for line in self._data().values())

    def product_ids(self) -> list[int]:
        return [int(key) for key in self._data()]

    def contents(self) -> CartContents:
        """Return the lines with their current products, and lines that cannot be sold."""
        data = self._data()
        if not data:
            return CartContents(lines=[])
        products = products_get(int(key) for key in data)
        lines, unavailable = [], []
        for key, line in data.items():
            product = products.get(int(key))
            if product is None or not product.is_active:
                unavailable.append((int(key), product.name if product else None))
                continue
            lines.append(CartLine(product=product, quantity=line["quantity"], added_price=Decimal(line["price"])))
        return CartContents(lines=lines, unavailable=unavailable)

    def summary(self) -> dict[str, Any]:
        contents = self.contents()
        return {
            "items": contents.item_count,
            "lines": {str(line.product.pk): line.quantity for line in contents.lines},
            "total": str(contents.total),
        }

    # --- Rules ---------------------------------------------------------------------------
    @staticmethod
    def max_quantity(product: Product) -> int:
        return min(product.stock, MAX_LINE_QUANTITY)

    def _check_quantity(self, product: Product, quantity: int) -> None:
        limit = self.max_quantity(product)
        if limit == 0:
            raise NotEnoughStock(f"Sorry, {product.name} is out of stock.")
        if quantity > limit:
            reason = "in stock" if product.stock < MAX_LINE_QUANTITY else "per order"
            raise NotEnoughStock(f"You can have at most {limit} of {product.name} in your basket ({limit} {reason}).")

    # --- Changes -------------------------------------------------------------------------
    def _store(self, data: dict[str, dict[str, Any]]) -> None:
        self.session[CART_SESSION_KEY] = data  # a new object: the session sees the change

    def add(self, product: Product, *, quantity: int = 1) -> int:
        """Add ``quantity`` of ``product``; return the line's new quantity."""
        if quantity < 1:
            raise InvalidQuantity("The quantity must be at least 1.")
        data = self._data()
        line = data.get(str(product.pk))
        new_quantity = (line["quantity"] if line else 0) + quantity
        self._check_quantity(product, new_quantity)
        price = line["price"] if line else str(product.price)
        data[str(product.pk)] = {"quantity": new_quantity, "price": price}
        self._store(data)
        return new_quantity

    def update(self, product: Product, *, quantity: int) -> int:
        """Set the line's quantity (0 removes it); return the new quantity."""
        if quantity < 0:
            raise InvalidQuantity("The quantity cannot be negative.")
        if quantity == 0:
            self.remove(product.pk)
            return 0
        self._check_quantity(product, quantity)
        data = self._data()
        price = data.get(str(product.pk), {}).get("price", str(product.price))
        data[str(product.pk)] = {"quantity": quantity, "price": price}
        self._store(data)
        return quantity

    def merge(self, other: object) -> list[tuple[Product, int]]:
        """Merge another basket in: per product the larger quantity, capped by stock.

        Returns the products whose quantity grew, with how many were added.
        """
        theirs = Cart._clean(other)
        if not theirs:
            return []
        data = self._data()
        products = Product.objects.filter(pk__in=[int(key) for key in theirs], is_active=True).in_bulk()
        added = []
        for key, line in theirs.items():
            product = products.get(int(key))
            if product is None:
                continue
            mine = data.get(key, {}).get("quantity", 0)
            quantity = min(max(mine, line["quantity"]), self.max_quantity(product))
            if quantity > mine:
                data[key] = {"quantity": quantity, "price": data.get(key, line)["price"]}
                added.append((product, quantity - mine))
        if added:
            self._store(data)
        return added

    def remove(self, *product_ids: int) -> bool:
        """Remove the lines of ``product_ids``; return whether any was there."""
        data = self._data()
        removed = [data.pop(str(pk)) for pk in product_ids if str(pk) in data]
        if removed:
            self._store(data)
        return bool(removed)

    def clear(self) -> None:
        if CART_SESSION_KEY in self.session:
            del self.session[CART_SESSION_KEY]
