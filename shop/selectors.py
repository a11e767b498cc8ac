"""Read the catalogue and orders."""

from __future__ import annotations

import re
from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVectorField
from django.db import connection
from django.db.models import F, Q, QuerySet
from django.db.models.expressions import RawSQL

from shop.models import Category, Order, Product

SEARCH_MAX_LENGTH = 100
# A search needs at least one word of this many letters or digits.
SEARCH_MIN_WORD = 2
WORD = re.compile(r"[^\W_]{2,}")


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


def searchable(query: str) -> bool:
    """Return whether ``query`` holds a word to search for (not only punctuation or single letters)."""
    return any(sum(c.isalnum() for c in word) >= SEARCH_MIN_WORD for word in query.split())


def product_search(*, query: str) -> QuerySet[Product]:
    """Return active products matching ``query`` as given, best first (``search_resolve`` corrects it first).

    On PostgreSQL: full-text search over name (weighted first) and
    description, words in any order, stemmed ("mugs" finds "mug"), ranked,
    through the stored vector's index. Elsewhere (the embedded SQLite
    default): name or description containing ``query``.
    """
    query = clean_query(query)
    if not searchable(query):
        return Product.objects.none()
    if connection.vendor != "postgresql":
        return product_list().filter(Q(name__icontains=query) | Q(description__icontains=query))
    words = SearchQuery(query, search_type="websearch", config="english")
    vector = RawSQL('"shop_product"."search_vector"', [], output_field=SearchVectorField())
    return (
        product_list()
        .annotate(vector=vector)
        .filter(vector=words)
        .annotate(rank=SearchRank(F("vector"), words))
        .order_by("-rank", "name", "id")
    )


def search_resolve(*, query: str) -> tuple[str, int]:
    """Return the search to run for ``query`` and how many products it finds.

    When ``query`` finds nothing on PostgreSQL, a word may be misspelt: each is
    replaced by the closest word of the catalogue by trigrams ("choclate" by
    "chocolate"), and that search is the one to run. The count decides: it
    reads the index (a bitmap scan), where asking whether any row matches
    would let the planner walk every product in name order for a first match
    that never comes.
    """
    count = product_search(query=query).count()
    if count or connection.vendor != "postgresql" or not searchable(query):
        return query, count
    corrected = search_words_closest(clean_query(query))
    return (corrected, product_search(query=corrected).count()) if corrected != query else (query, 0)


def search_words_closest(query: str) -> str:
    """Return ``query`` with each word replaced by the catalogue's closest word by trigrams (one query)."""
    words = WORD.findall(query.lower())
    if not words:
        return query
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT asked, (SELECT word FROM shop_searchword WHERE word %% asked
                              ORDER BY similarity(word, asked) DESC, word LIMIT 1)
               FROM unnest(%s::text[]) AS asked""",
            [words],
        )
        closest = dict(cursor.fetchall())
    return " ".join(closest.get(word) or word for word in words)


def order_get_visible(
    *, order_id: int, session_order_ids: Iterable[int], user: AbstractBaseUser | AnonymousUser
) -> Order | None:
    """Return the order if this session placed it or the signed-in user owns it."""
    visible = Q(pk__in=list(session_order_ids))
    if user.is_authenticated:
        visible |= Q(user_id=user.pk)
    return Order.objects.filter(visible, pk=order_id).prefetch_related("lines").first()
