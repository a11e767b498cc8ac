"""Keep the products baskets and lists show in the general cache, so their warm pages run no SQL.

Entries are forgotten wherever a product changes (admin, checkout), and live a
few minutes at most, so a change made some other way shows up soon too.
Checkout never trusts them: it reads and locks the rows in PostgreSQL.

Forgetting a product also starts a new content generation: the list pages
(``shop.list_cache``) keep their rendered products under it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from decimal import Decimal

from django.core.cache import cache
from django.core.validators import slug_re
from django.db import transaction

from durable_sessions.cache.backend import breaker_state
from durable_sessions.cache.breaker import OPEN
from durable_sessions.sealing import Forged, seal, unseal
from shop.models import Product

logger = logging.getLogger(__name__)

PRODUCT_CACHE_PREFIX = "product:v2:"
# Changes whenever a product is forgotten: what was rendered from products before is stale.
CONTENT_GENERATION_KEY = "catalogue:content"
PRODUCT_CACHE_TIMEOUT = 300
ENTRY_SALT = "shop.product_cache"
# What each field of an entry must be; anything else is not an entry of ours.
_FIELDS = {"id": int, "category_id": int, "name": str, "slug": str, "price": str, "stock": int, "is_active": bool}


def _key(product_id: int) -> str:
    return f"{PRODUCT_CACHE_PREFIX}{product_id}"


def _to_entry(product: Product) -> str:
    entry = {**{name: getattr(product, name) for name in _FIELDS}, "price": str(product.price)}
    return seal(_key(product.pk), entry, salt=ENTRY_SALT)


def _from_entry(product_id: int, stored: object) -> Product | None:
    """Return the product an entry holds, or None for one that is not an entry of ours.

    Redis may be tampered with: an entry must carry its MAC (over its key, so
    it cannot be moved to another product), and every field its type.
    """
    try:
        entry = unseal(_key(product_id), stored, salt=ENTRY_SALT)
    except Forged:
        return None
    if not isinstance(entry, dict) or set(entry) != set(_FIELDS):
        return None
    if any(type(entry[name]) is not kind for name, kind in _FIELDS.items()) or entry["id"] != product_id:
        return None
    if not slug_re.fullmatch(entry["slug"]) or entry["stock"] < 0:
        return None
    try:
        return Product(**{**entry, "price": Decimal(entry["price"])})
    except (TypeError, ValueError, ArithmeticError):
        return None


def products_get(ids: Iterable[int]) -> dict[int, Product]:
    """Return products by id (active or not; deleted ones are absent): cache first, then one query."""
    ids = list(dict.fromkeys(ids))
    if not ids:
        return {}
    if redis_known_down():
        return Product.objects.in_bulk(ids)
    cached = cache_get_many([_key(pk) for pk in ids])
    if cached is None:  # Redis does not answer: no write-back either
        return Product.objects.in_bulk(ids)
    entries = ((pk, _from_entry(pk, cached[_key(pk)])) for pk in ids if _key(pk) in cached)
    found = {pk: product for pk, product in entries if product is not None}
    missing = [pk for pk in ids if pk not in found]
    if missing:
        rows = Product.objects.in_bulk(missing)
        found.update(rows)
        cache_set_many({_key(p.pk): _to_entry(p) for p in rows.values()}, PRODUCT_CACHE_TIMEOUT)
    return found


def redis_known_down() -> bool:
    """Return whether this process's session cache breaker is open.

    The general cache lives on the same Redis: while the breaker says Redis is
    down, asking it for products would only add a timeout to the page.
    """
    return breaker_state() == OPEN


def products_in_order(ids: Iterable[int]) -> list[Product]:
    """Return the active products among ``ids``, in the order given (cache first)."""
    ids = list(ids)
    found = products_get(ids)
    return [found[pk] for pk in ids if pk in found and found[pk].is_active]


def cache_get_many(keys: list[str]) -> dict | None:
    """Return the entries the general cache holds for ``keys``; None when it cannot be reached."""
    try:
        return cache.get_many(keys)
    except Exception:  # the cache is an optimisation: without it, render from PostgreSQL
        logger.warning("product cache unavailable", exc_info=True)
        return None


def cache_set_many(entries: dict[str, object], timeout: int) -> None:
    """Store entries in the general cache; a failure is logged, never raised (the cache is an optimisation)."""
    try:
        cache.set_many(entries, timeout)
    except Exception:
        logger.warning("product cache unavailable", exc_info=True)


def products_forget(ids: Iterable[int]) -> None:
    """Drop cached products, and what lists rendered from them, once the current transaction (if any) has committed."""
    keys = [_key(pk) for pk in ids]
    if not keys:
        return

    def forget() -> None:
        try:
            cache.delete_many(keys)
            cache.set(CONTENT_GENERATION_KEY, uuid.uuid4().hex, None)
        except Exception:
            logger.warning("product cache unavailable; entries expire within %ss", PRODUCT_CACHE_TIMEOUT)

    transaction.on_commit(forget)
