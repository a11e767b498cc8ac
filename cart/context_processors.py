"""Put the basket's item count in every page's header."""

from __future__ import annotations

from django.http import HttpRequest

from cart.cart import Cart


def cart(request: HttpRequest) -> dict:
    # A callable: the session is read only if a template shows the count.
    return {"cart_item_count": lambda: Cart(request.session).item_count}
