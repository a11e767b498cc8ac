"""Serve the catalogue's list pages (home, category, search) from the cache.

A list page is kept as the ids of the products it shows and its rendered
grid, beside its list's count and the category list. Two generations say
which entries still hold:

- the catalogue's generation changes with what a list holds or its order (a
  product added, renamed, hidden, moved or deleted, a category changed:
  ``catalogue_changed``): ids, counts and categories of another generation are
  read again from PostgreSQL;
- the content generation changes whenever a product is forgotten
  (``shop.product_cache.products_forget``: stock taken at checkout, an edit in
  the admin): a grid of another one is rendered again, from the ids it keeps
  and the cached products, without SQL.

A warm list page thus runs no SQL and one Redis round trip besides the
session, whatever the page and the catalogue's size; the count, the one query
that grows with the catalogue, runs once per list and generation.

Entries are sealed like the sessions' (``durable_sessions.sealing``: a MAC
from ``SECRET_KEY`` over their key and JSON), since Redis may be tampered with
and a grid is HTML sent as it is: a forged entry, or one moved from another
key, is dropped and built again. They live a few minutes
at most (search results one), so a change made behind the shop's back (SQL, a
migration) shows up soon too.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.core.cache import cache
from django.core.paginator import Page, Paginator
from django.db import transaction
from django.db.models import QuerySet
from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe

from durable_sessions.sealing import Forged, seal, unseal
from shop import selectors
from shop.models import Category, Product
from shop.product_cache import (
    CONTENT_GENERATION_KEY,
    cache_get_many,
    cache_set_many,
    products_in_order,
    redis_known_down,
)

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
    """One page of a product list, rendered (its products and the links to other pages), and the categories."""

    grid: SafeString
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
    return _listing("all", number, lambda categories, searched: selectors.product_list())


def category_listing(*, slug: str, number: object) -> tuple[Listing, Category] | None:
    """Return a page of a category's active products, and the category; None for no such category."""

    def products(categories: list[Category], searched: str) -> QuerySet[Product] | None:
        category = _category_find(categories, slug)
        return selectors.product_list(category=category) if category else None

    listing = _listing(f"category:{slug}", number, products)
    category = _category_find(listing.categories, slug)
    return (listing, category) if category else None


def _category_find(categories: list[Category], slug: str) -> Category | None:
    return next((c for c in categories if c.slug == slug), None)


def search_listing(*, query: str, number: object) -> Listing:
    """Return a page of the active products matching ``query``, best first, misspelt words corrected (``selectors``)."""
    words = " ".join(selectors.clean_query(query).lower().split())
    scope = "search:" + hashlib.sha256(words.encode()).hexdigest()[:32]
    return _listing(
        scope,
        number,
        lambda categories, searched: selectors.product_search(query=searched),
        query=query,
        resolve=lambda: selectors.search_resolve(query=query),
    )


def _listing(
    scope: str,
    raw_number: object,
    products: Callable[[list[Category], str], QuerySet[Product] | None],
    *,
    query: str = "",
    resolve: Callable[[], tuple[str, int]] | None = None,
) -> Listing:
    """Return a page of the list ``products`` gives (asked only on a miss).

    ``products`` gives None for a list that does not exist (an unknown
    category): an empty page. A search first ``resolve``s what to search for
    and how many it finds; its pages then ask ``products`` for that search.
    """
    timeout = SEARCH_CACHE_TIMEOUT if resolve else LIST_CACHE_TIMEOUT
    number = _page_number(raw_number)
    use_cache = not redis_known_down()
    count_key, page_key = _key(scope, "count"), _key(scope, f"page:{number}")
    keys = [GENERATION_KEY, CONTENT_GENERATION_KEY, _key("categories"), count_key, page_key]
    got = cache_get_many(keys) if use_cache else None
    if got is None:  # the breaker is open or Redis did not answer: build the page from PostgreSQL, keep nothing
        use_cache, got = False, {}
    generation = got.get(GENERATION_KEY) or (_generation_start(GENERATION_KEY) if use_cache else None)
    content = got.get(CONTENT_GENERATION_KEY) or (_generation_start(CONTENT_GENERATION_KEY) if use_cache else None)
    fresh = {}  # entries built here, stored in one round trip

    def cached(key: str) -> dict:
        entry = _open(key, got.get(key)) if generation else None
        return entry if entry and entry.get("generation") == generation else {}

    def keep(key: str, **entry: object) -> None:
        fresh[key] = seal(key, {"generation": generation, **entry}, salt=ENTRY_SALT)

    rows = cached(_key("categories")).get("value")
    if rows is None:
        rows = [[c.pk, c.name, c.slug] for c in selectors.category_list()]
        keep(_key("categories"), value=rows)
    categories = [Category(pk=pk, name=name, slug=slug) for pk, name, slug in rows]

    counted = cached(count_key)
    count, searched = counted.get("value"), counted.get("searched", query)
    if count is None:
        if resolve:
            searched, count = resolve()
        elif (listed := products(categories, searched)) is None:
            return Listing(grid=mark_safe(""), categories=categories)
        else:
            count = listed.count()
        keep(count_key, value=count, searched=searched)
    paginator = Paginator(range(count), PRODUCTS_PER_PAGE)  # pages of a list whose count is known: no query
    number = min(number, paginator.num_pages)
    if page_key != _key(scope, f"page:{number}"):  # asked past the last page: show the last
        page_key = _key(scope, f"page:{number}")
        got |= (cache_get_many([page_key]) or {}) if use_cache else {}
    entry = cached(page_key)
    grid = entry.get("grid") if content and entry.get("content") == content else None
    if grid is None:
        if "ids" in entry:  # the same products, some of them changed since: render them again
            ids, shown = entry["ids"], products_in_order(entry["ids"])
        elif (listed := products(categories, searched)) is None:
            return Listing(grid=mark_safe(""), categories=categories)
        else:
            # The ids first: an OFFSET over the index alone (an index-only scan),
            # where one over whole rows would fetch every row it skips (the
            # last page at 100,000 products: 20 ms against 150).
            start = (number - 1) * PRODUCTS_PER_PAGE
            ids = list(listed.values_list("pk", flat=True)[start : start + PRODUCTS_PER_PAGE])
            shown = products_in_order(ids)
        grid = render_to_string("shop/_product_grid.html", {"page": Page(shown, number, paginator), "query": query})
        keep(page_key, ids=ids, content=content, grid=grid)
    if fresh and generation:
        cache_set_many(fresh, timeout)
    return Listing(grid=mark_safe(grid), categories=categories)  # noqa: S308 -- rendered here, or signed by us


def _page_number(raw: object) -> int:
    try:
        number = int(str(raw))
    except ValueError:
        return 1
    return min(max(number, 1), PAGE_NUMBER_MAX)


def _key(scope: str, part: str = "") -> str:
    return f"{LIST_CACHE_PREFIX}{scope}:{part}" if part else f"{LIST_CACHE_PREFIX}{scope}"


def _generation_start(key: str) -> str | None:
    """Return a generation after the cache lost it (flushed, evicted): a new one, or another process's."""
    try:
        cache.add(key, uuid.uuid4().hex, None)
        return cache.get(key)
    except Exception:
        logger.warning("catalogue cache unavailable", exc_info=True)
        return None


def _open(key: str, stored: object) -> dict | None:
    """Return an entry, or None for no entry, a forged one or one moved from another key (its MAC covers its key)."""
    try:
        entry = unseal(key, stored, salt=ENTRY_SALT)
    except Forged:
        return None
    return entry if isinstance(entry, dict) else None
