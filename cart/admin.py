"""Show each session's basket, at today's prices, in the session admin."""

from __future__ import annotations

from django.contrib import admin

from cart.cart import CART_SESSION_KEY, Cart
from durable_sessions.admin import UserSessionAdmin
from durable_sessions.models import UserSession
from shop.recently_viewed import RECENTLY_VIEWED_SESSION_KEY
from shop.services import ORDERS_SESSION_KEY


class BasketSessionAdmin(UserSessionAdmin):
    """The session admin with the basket's size and total, as the basket page counts them."""

    list_display = [*UserSessionAdmin.list_display, "basket_items", "basket_total"]
    # The shop's own keys are safe to show: the basket, and (the shop's) recently viewed and orders.
    shown_keys = UserSessionAdmin.shown_keys | {CART_SESSION_KEY, RECENTLY_VIEWED_SESSION_KEY, ORDERS_SESSION_KEY}
    fields = [*UserSessionAdmin.fields[:-1], "basket_items", "basket_total", UserSessionAdmin.fields[-1]]
    readonly_fields = fields

    @admin.display(description="basket items")
    def basket_items(self, obj: UserSession) -> int:
        return Cart(obj.stored).contents().item_count

    @admin.display(description="basket total")
    def basket_total(self, obj: UserSession) -> str:
        return f"£{Cart(obj.stored).contents().total:.2f}"


# The session tier registers its admin first (INSTALLED_APPS order); the basket joins it.
admin.site.unregister(UserSession)
admin.site.register(UserSession, BasketSessionAdmin)
