"""Serve the catalogue's list pages (home, category, search) from the cache.

A list page is kept as the ids of the products it shows, beside its list's
count and the category list; its cards come from the product cards
(``shop.product_cache``), each forgotten when its product changes (stock taken
at checkout, an edit in the admin). What changes which products a list holds
or their order (a product added, renamed, hidden, moved or deleted, a category
changed) changes the catalogue's generation instead: every entry carries the
generation it was built in, and one of another generation is built again. A
warm list page thus runs no SQL and two Redis round trips (the entries, then
the cards), whatever the page and the catalogue's size; the count, the one
query that grows with the catalogue, runs once per list and generation.

Entries are signed like the cards, since Redis may be tampered with, and live a
few minutes at most (search results one), so a change made behind the shop's
back (SQL, a migration) shows up soon too.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.core import signing
from django.core.cache import cache
from django.core.paginator import Page, Paginator
from django.db import transaction
from django.db.models import QuerySet

from shop import selectors
from shop.models import Category, Product
from shop.product_cache import cache_get_many, cache_set_many, product_cards, redis_known_down

logger = logging.getLogger(__name__)

PRODUCTS_PER_PAGE = 24
GENERATION_KEY = "catalogue:generation"
LIST_CACHE_PREFIX = "catalogue:v1:"
LIST_CACHE_TIMEOUT = 300
# Every distinct query makes entries: they go sooner.
SEARCH_CACHE_TIMEOUT = 60
ENTRY_SALT = "shop.list_cache"
# Page numbers past this are taken as the last page, as are those past the end.
PAGE_NUMBER_MAX = 1_000_000


@dataclass(frozen=True)
class Listing:
    """One page of a product list, as rendered cards, and the categories to browse."""

    page: Page
    categories: list[Category]


def catalogue_changed() -> None:
    """Start a new generation once the current transaction (if any) has committed: every list is built again.

    Call it after anything that changes which products a list shows or their
    order: a product added, renamed, hidden, moved to another category or
    deleted, a category added, renamed or deleted. A change to a product's
    price or stock only needs ``products_forget``.
    """

    def bump() -> None:
        try:
            cache.set(GENERATION_KEY, uuid.uuid4().hex, None)
        except Exception:
            logger.warning("catalogue cache unavailable; lists are rebuilt within %ss", LIST_CACHE_TIMEOUT)

    transaction.on_commit(bump)


def home_listing(*, number: object) -> Listing:
    """Return a page of every active product, by name."""
    return _listing("all", number, lambda categories: selectors.product_list())


def category_listing(*, slug: str, number: object) -> tuple[Listing, Category] | None:
    """Return a page of a category's active products, and the category; None for no such category."""

    def products(categories: list[Category]) -> QuerySet[Product] | None:
        category = _category_find(categories, slug)
        return selectors.product_list(category=category) if category else None

    listing = _listing(f"category:{slug}", number, products)
    category = _category_find(listing.categories, slug)
    return (listing, category) if category else None


def _category_find(categories: list[Category], slug: str) -> Category | None:
    return next((c for c in categories if c.slug == slug), None)


def search_listing(*, query: str, number: object) -> Listing:
    """Return a page of the active products matching ``query``, best first (``selectors.product_search``)."""
    words = " ".join(selectors.clean_query(query).lower().split())
    scope = "search:" + hashlib.sha256(words.encode()).hexdigest()[:32]
    return _listing(scope, number, lambda categories: selectors.product_search(query=query))


def _listing(scope: str, raw_number: object, products: Callable[[list[Category]], QuerySet[Product] | None]) -> Listing:
    """Return a page of the list ``products`` gives (asked only on a miss; None for no such list: an empty page)."""
    timeout = SEARCH_CACHE_TIMEOUT if scope.startswith("search:") else LIST_CACHE_TIMEOUT
    number = _page_number(raw_number)
    use_cache = not redis_known_down()
    count_key, page_key = _key(scope, "count"), _key(scope, f"page:{number}")
    got = cache_get_many([GENERATION_KEY, _key("categories"), count_key, page_key]) if use_cache else {}
    generation = got.get(GENERATION_KEY) or (_generation_start() if use_cache else None)
    fresh = {}  # entries built here, stored in one round trip

    def cached(key: str) -> object:
        entry = _open(key, got.get(key)) if generation else None
        return entry["value"] if entry and entry.get("generation") == generation else None

    def keep(key: str, value: object) -> None:
        fresh[key] = _seal(key, {"generation": generation, "value": value})

    rows = cached(_key("categories"))
    if rows is None:
        rows = [[c.pk, c.name, c.slug] for c in selectors.category_list()]
        keep(_key("categories"), rows)
    categories = [Category(pk=pk, name=name, slug=slug) for pk, name, slug in rows]

    listed: QuerySet[Product] | None = None

    def queryset() -> QuerySet[Product] | None:
        nonlocal listed
        if listed is None:
            listed = products(categories)
        return listed

    count = cached(count_key)
    if count is None:
        if queryset() is None:
            return _empty(categories)
        count = queryset().count()
        keep(count_key, count)
    paginator = Paginator(range(count), PRODUCTS_PER_PAGE)  # pages of a list whose count is known: no query
    number = min(number, paginator.num_pages)
    if page_key != _key(scope, f"page:{number}"):  # asked past the last page: show the last
        page_key = _key(scope, f"page:{number}")
        got |= cache_get_many([page_key]) if use_cache else {}
    ids = cached(page_key)
    known: dict[int, Product] = {}
    if ids is None:
        if queryset() is None:
            return _empty(categories)
        start = (number - 1) * PRODUCTS_PER_PAGE
        known = {p.pk: p for p in queryset()[start : start + PRODUCTS_PER_PAGE]}
        ids = list(known)
        keep(page_key, ids)
    if fresh and generation:
        cache_set_many(fresh, timeout)
    return Listing(page=Page(product_cards(ids, known=known), number, paginator), categories=categories)


def _empty(categories: list[Category]) -> Listing:
    return Listing(page=Paginator([], PRODUCTS_PER_PAGE).page(1), categories=categories)


def _page_number(raw: object) -> int:
    try:
        number = int(str(raw))
    except ValueError:
        return 1
    return min(max(number, 1), PAGE_NUMBER_MAX)


def _key(scope: str, part: str = "") -> str:
    return f"{LIST_CACHE_PREFIX}{scope}:{part}" if part else f"{LIST_CACHE_PREFIX}{scope}"


def _generation_start() -> str | None:
    """Return the catalogue's generation after the cache lost it (flushed, evicted): a new one, or another process's."""
    try:
        cache.add(GENERATION_KEY, uuid.uuid4().hex, None)
        return cache.get(GENERATION_KEY)
    except Exception:
        logger.warning("catalogue cache unavailable", exc_info=True)
        return None


def _seal(key: str, entry: dict) -> str:
    return signing.dumps({"key": key, **entry}, salt=ENTRY_SALT)


def _open(key: str, stored: object) -> dict | None:
    """Return an entry, or None for no entry, a forged one or one moved from another key."""
    if not isinstance(stored, str):
        return None
    try:
        entry = signing.loads(stored, salt=ENTRY_SALT)
    except signing.BadSignature:
        logger.warning("catalogue entry with a bad signature dropped: %s", key)
        return None
    return entry if isinstance(entry, dict) and entry.get("key") == key else None
