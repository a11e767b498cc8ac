"""Place orders."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.contrib.sessions.backends.base import SessionBase
from django.db import IntegrityError, transaction
from django.db.models import F

from cart.cart import Cart
from durable_sessions.backends.cached_db import locked
from shop.models import Order, OrderLine, Product
from shop.product_cache import products_forget

ORDERS_SESSION_KEY = "orders"
# The session keeps the ids of this many of its latest orders (an anonymous shopper's
# way back to them): without a bound it grows with every checkout, and so does each read of it.
ORDERS_KEPT_IN_SESSION = 50


class CheckoutError(Exception):
    """The order cannot be placed; the message says why, for the shopper."""


class EmptyBasket(CheckoutError):
    """There is nothing to order."""


class InsufficientStock(CheckoutError):
    """A line asks for more than is left."""


@dataclass(frozen=True)
class Customer:
    name: str
    email: str
    address: str


def session_order_ids(session: SessionBase) -> list[int]:
    value = session.get(ORDERS_SESSION_KEY, [])
    return [i for i in value if isinstance(i, int)] if isinstance(value, list) else []


@transaction.atomic
def order_place(
    *, session: SessionBase, user: AbstractBaseUser | AnonymousUser, customer: Customer, token: UUID
) -> Order:
    """Turn the session's basket into an order, in one transaction.

    Every line is checked again against the products' rows, locked so that two
    checkouts cannot sell the same last item; stock is decremented, the order and
    its lines (with price snapshots) are written and the basket is emptied.
    Anything wrong raises CheckoutError and nothing is written. A form posted
    twice (same token) returns the order the first post placed.
    """
    with locked(session):
        existing = Order.objects.filter(token=token).first()
        if existing is not None:
            if existing.pk in session_order_ids(session):
                return existing
            raise CheckoutError("This checkout form was already used. Please try again.")
        cart = Cart(session)
        wanted = {pk: cart.quantity_of(pk) for pk in cart.product_ids()}
        if not wanted:
            raise EmptyBasket("Your basket is empty.")
        # Lock in id order so concurrent checkouts cannot deadlock.
        products = {p.pk: p for p in Product.objects.select_for_update().filter(pk__in=wanted).order_by("pk")}
        problems = []
        for pk, quantity in wanted.items():
            product = products.get(pk)
            if product is None or not product.is_active:
                problems.append("a product in your basket is no longer available")
            elif product.stock < quantity:
                problems.append(f"only {product.stock} of {product.name} left")
        if problems:
            raise InsufficientStock("We could not place your order: " + "; ".join(problems) + ".")
        lines = [
            OrderLine(product=products[pk], product_name=products[pk].name, unit_price=products[pk].price, quantity=q)
            for pk, q in wanted.items()
        ]
        try:
            with transaction.atomic():
                order = Order.objects.create(
                    token=token,
                    user=user if user.is_authenticated else None,
                    name=customer.name,
                    email=customer.email,
                    address=customer.address,
                    total=sum((line.line_total for line in lines), 0),
                )
        except IntegrityError as error:  # the same form, placed meanwhile by another instance
            raise CheckoutError("This checkout form was already used. Please try again.") from error
        for line in lines:
            line.order = order
        OrderLine.objects.bulk_create(lines)
        for pk, quantity in wanted.items():
            Product.objects.filter(pk=pk).update(stock=F("stock") - quantity)
        products_forget(wanted)
        cart.clear()
        session[ORDERS_SESSION_KEY] = [*session_order_ids(session), order.pk][-ORDERS_KEPT_IN_SESSION:]
    return order
