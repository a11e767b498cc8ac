"""Read the catalogue and orders."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q, QuerySet

from shop.models import Category, Order, Product

SEARCH_MAX_LENGTH = 100


def clean_query(raw: str) -> str:
    """Return a search query the database accepts: no NUL bytes, bounded length."""
    return raw.replace("\x00", "").strip()[:SEARCH_MAX_LENGTH]


def category_list() -> QuerySet[Category]:
    return Category.objects.order_by("name")


def product_list(*, category: Category | None = None) -> QuerySet[Product]:
    """Return active products, by name, with their category in the same query."""
    products = Product.objects.filter(is_active=True).select_related("category")
    if category is not None:
        products = products.filter(category=category)
    return products.order_by("name", "id")


def product_search(*, query: str) -> QuerySet[Product]:
    """Return active products whose name or description contains ``query``."""
    query = clean_query(query)
    if not query:
        return Product.objects.none()
    return product_list().filter(Q(name__icontains=query) | Q(description__icontains=query))


def products_in_order(*, ids: Iterable[int]) -> list[Product]:
    """Return the active products among ``ids``, in the order given."""
    ids = list(ids)
    found = product_list().in_bulk(ids)
    return [found[i] for i in ids if i in found]


def order_get_visible(
    *, order_id: int, session_order_ids: Iterable[int], user: AbstractBaseUser | AnonymousUser
) -> Order | None:
    """Return the order if this session placed it or the signed-in user owns it."""
    visible = Q(pk__in=list(session_order_ids))
    if user.is_authenticated:
        visible |= Q(user_id=user.pk)
    return Order.objects.filter(visible, pk=order_id).prefetch_related("lines").first()
