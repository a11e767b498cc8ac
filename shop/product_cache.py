"""Keep products and their rendered cards in the general cache, so warm basket and list pages run no SQL.

Entries are forgotten wherever a product changes (admin, checkout), and live a
few minutes at most, so a change made some other way shows up soon too.
Checkout never trusts them: it reads and locks the rows in PostgreSQL.

A card is HTML the shop sends as it is, and Redis may be tampered with: each is
signed with ``SECRET_KEY`` together with its key, so a forged card, or one
moved to another product, is dropped and rendered again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from decimal import Decimal

from django.core import signing
from django.core.cache import cache
from django.db import transaction
from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe

from durable_sessions.cache.backend import breaker_state
from durable_sessions.cache.breaker import OPEN
from shop.models import Product

logger = logging.getLogger(__name__)

PRODUCT_CACHE_PREFIX = "product:v1:"
CARD_CACHE_PREFIX = "card:v1:"
CARD_SALT = "shop.product_cache.card"
PRODUCT_CACHE_TIMEOUT = 300
_FIELDS = ("id", "category_id", "name", "slug", "price", "stock", "is_active")


def _key(product_id: int) -> str:
    return f"{PRODUCT_CACHE_PREFIX}{product_id}"


def _card_key(product_id: int) -> str:
    return f"{CARD_CACHE_PREFIX}{product_id}"


def _to_entry(product: Product) -> dict:
    return {**{name: getattr(product, name) for name in _FIELDS}, "price": str(product.price)}


def _from_entry(entry: object) -> Product | None:
    """Return the product an entry holds, or None for one that is not an entry of ours (Redis may be tampered with)."""
    if not isinstance(entry, dict) or set(entry) != set(_FIELDS):
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
    entries = ((pk, _from_entry(cached[_key(pk)])) for pk in ids if _key(pk) in cached)
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


def product_cards(ids: Iterable[int], *, known: dict[int, Product] | None = None) -> list[SafeString]:
    """Return the rendered cards of the active products among ``ids``, in order: cache first, then rendered and kept.

    ``known`` holds products the caller has just read, so a card missing from
    the cache costs no further query.
    """
    ids = list(dict.fromkeys(ids))
    if not ids:
        return []
    cached = {} if redis_known_down() else cache_get_many([_card_key(pk) for pk in ids])
    cards: dict[int, str] = {}
    for pk in ids:
        card = _card_open(pk, cached.get(_card_key(pk)))
        if card is not None:
            cards[pk] = card
    missing = [pk for pk in ids if pk not in cards]
    if missing:
        known = known or {}
        products = {pk: known[pk] for pk in missing if pk in known}
        products |= products_get(pk for pk in missing if pk not in products)
        rendered = {pk: _card_render(products[pk]) if pk in products else "" for pk in missing}
        cards |= rendered
        if not redis_known_down():
            cache_set_many(
                {_card_key(pk): _card_seal(pk, card) for pk, card in rendered.items()}, PRODUCT_CACHE_TIMEOUT
            )
    # An inactive or deleted product's card is kept empty, so it is not looked up again.
    return [mark_safe(cards[pk]) for pk in ids if cards[pk]]  # noqa: S308 -- rendered by our template, signed


def _card_render(product: Product) -> str:
    return render_to_string("shop/_product_card.html", {"product": product}) if product.is_active else ""


def _card_seal(product_id: int, card: str) -> str:
    return signing.Signer(salt=CARD_SALT).sign(f"{product_id}\n{card}")


def _card_open(product_id: int, stored: object) -> str | None:
    """Return the card a cache entry holds, or None for no entry, a forged one or another product's."""
    if not isinstance(stored, str):
        return None
    try:
        value = signing.Signer(salt=CARD_SALT).unsign(stored)
    except signing.BadSignature:
        logger.warning("product card with a bad signature dropped: %s", _card_key(product_id))
        return None
    owner, _, card = value.partition("\n")
    return card if owner == str(product_id) else None


def cache_get_many(keys: list[str]) -> dict:
    """Return the entries the general cache holds for ``keys``; none when it cannot be reached."""
    try:
        return cache.get_many(keys)
    except Exception:  # the cache is an optimisation: without it, render from PostgreSQL
        logger.warning("product cache unavailable", exc_info=True)
        return {}


def cache_set_many(entries: dict[str, object], timeout: int) -> None:
    """Store entries in the general cache; a failure is logged, never raised (the cache is an optimisation)."""
    try:
        cache.set_many(entries, timeout)
    except Exception:
        logger.warning("product cache unavailable", exc_info=True)


def products_forget(ids: Iterable[int]) -> None:
    """Drop cached products and their cards once the current transaction (if any) has committed."""
    ids = list(ids)
    keys = [_key(pk) for pk in ids] + [_card_key(pk) for pk in ids]
    if not keys:
        return

    def forget() -> None:
        try:
            cache.delete_many(keys)
        except Exception:
            logger.warning("product cache unavailable; entries expire within %ss", PRODUCT_CACHE_TIMEOUT)

    transaction.on_commit(forget)
