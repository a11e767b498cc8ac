"""Load the demo catalogue: categories and products with varied prices and stock, as many as asked for."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from decimal import Decimal

from django.core.management.base import BaseCommand
from django.db import connection, transaction
from django.utils.text import slugify

from shop.list_cache import catalogue_changed
from shop.models import Category, Product

CATEGORIES = {
    "Garden": ["Trowel", "Watering Can", "Seed Tray", "Pruning Shears", "Plant Labels"],
    "Kitchen": ["Chef's Knife", "Cutting Board", "Mixing Bowl", "Tea Towel", "Salt Mill"],
    "Outdoors": ["Camping Mug", "Head Torch", "Trail Map", "Rain Poncho", "Thermos"],
    "Stationery": ["Notebook", "Fountain Pen", "Pencil Case", "Desk Calendar", "Sketch Pad"],
    "Home": ["Linen Cushion", "Wool Throw", "Candle", "Door Mat", "Picture Frame"],
    "Toys": ["Wooden Blocks", "Kite", "Puzzle", "Spinning Top", "Marbles"],
    "Books": ["Field Guide", "Cookbook", "Atlas", "Poetry Collection", "Almanac"],
    "Pantry": ["Honey Jar", "Olive Oil", "Oat Biscuits", "Loose Tea", "Fruit Jam"],
    "Bath": ["Soap Bar", "Bath Salts", "Loofah", "Hand Cream", "Cotton Towel"],
}
VARIANTS = ["Classic", "Forest", "Meadow", "Harbour", "Alpine"]
# Beyond the demo catalogue's 225 products (--products): every adjective, material and item in turn.
ADJECTIVES = [
    "Amber", "Bright", "Coastal", "Dusky", "Elder", "Fern", "Golden", "Heather", "Ivory", "Juniper",
    "Kestrel", "Linen", "Misty", "Nordic", "Orchard", "Pebble", "Quiet", "Russet", "Saffron", "Tidal",
]  # fmt: skip
MATERIALS = [
    "Oak", "Ash", "Birch", "Walnut", "Copper", "Brass", "Steel", "Wool", "Cotton", "Linen",
    "Stoneware", "Glass", "Cork", "Bamboo", "Leather", "Felt", "Slate", "Clay", "Willow", "Hemp",
]  # fmt: skip
EXTRA_ITEMS = {"Pantry": ["Dark Chocolate", "Milk Chocolate"], "Kitchen": ["Chocolate Pot"]}
BATCH_SIZE = 5000


def catalogue(count: int) -> Iterator[tuple[str, str, str, Decimal, int]]:
    """Yield ``count`` (category, name, description, price, stock) rows, the same every time.

    The demo catalogue first; past it, generated names (adjective, material,
    item, and a series number once every combination is used) and prices.
    """
    demo = demo_catalogue()
    yield from demo[:count]
    items = [
        (category, item) for category, names in CATEGORIES.items() for item in names + EXTRA_ITEMS.get(category, [])
    ]
    rng = random.Random(20261206)
    combinations = len(items) * len(ADJECTIVES) * len(MATERIALS)
    for n in range(count - len(demo)):
        category, item = items[n % len(items)]
        adjective = ADJECTIVES[n // len(items) % len(ADJECTIVES)]
        material = MATERIALS[n // (len(items) * len(ADJECTIVES)) % len(MATERIALS)]
        series = n // combinations + 1
        name = f"{adjective} {material} {item}" + (f" {series}" if series > 1 else "")
        description = f"A {adjective.lower()} {item.lower()} in {material.lower()}, from our {category.lower()} range."
        yield category, name, description, Decimal(rng.randrange(199, 15000)) / 100, rng.choice([0, 3, 15, 40, 120])


def demo_catalogue() -> list[tuple[str, str, str, Decimal, int]]:
    """Return (category, name, description, price, stock) rows, the same every time."""
    rng = random.Random(20261123)
    rows = []
    for category, items in CATEGORIES.items():
        for item in items:
            for variant in VARIANTS:
                name = f"{variant} {item}"
                price = Decimal(rng.randrange(199, 15000)) / 100
                stock = 0 if rng.random() < 0.04 else rng.choice([1, 2, 3, 8, 15, 40, 120])
                description = f"A {variant.lower()} {item.lower()} from our {category.lower()} range. Built to last."
                rows.append((category, name, description, price, stock))
    return rows


class Command(BaseCommand):
    help = "Load the demo catalogue (or --products N). Idempotent: products already there are left as they are."

    def add_arguments(self, parser):
        parser.add_argument("--if-empty", action="store_true", help="Do nothing if any product exists.")
        parser.add_argument("--dry-run", action="store_true", help="Say what would be created; write nothing.")
        parser.add_argument(
            "--products",
            type=int,
            default=len(demo_catalogue()),
            help="How many products the catalogue should hold (the demo's 225 first, then generated ones).",
        )

    @transaction.atomic
    def handle(self, *args, if_empty: bool = False, dry_run: bool = False, products: int, **options):
        if if_empty and Product.objects.exists():
            self.stdout.write("The catalogue is not empty; nothing to do.")
            return
        categories = {c.slug: c for c in Category.objects.all()}
        new_categories = [
            Category(name=name, slug=slugify(name)) for name in CATEGORIES if slugify(name) not in categories
        ]
        existing = set(Product.objects.values_list("slug", flat=True))
        new_products = (row for row in catalogue(max(products, 0)) if slugify(row[1]) not in existing)
        if dry_run:
            count = sum(1 for _ in new_products)
            self.stdout.write(f"Would create {len(new_categories)} categories and {count} products.")
            return
        for category in Category.objects.bulk_create(new_categories):
            categories[category.slug] = category
        created = 0
        # In batches: a catalogue of 100,000 is never held as objects all at once.
        while batch := list(itertools.islice(new_products, BATCH_SIZE)):
            Product.objects.bulk_create(
                Product(
                    category=categories[slugify(category)],
                    name=name,
                    slug=slugify(name),
                    description=description,
                    price=price,
                    stock=stock,
                )
                for category, name, description, price, stock in batch
            )
            created += len(batch)
        if created and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE shop_product")  # fresh statistics: the planner picks the search indexes
        if created or new_categories:
            catalogue_changed()  # the list pages a running shop keeps in its cache show the new products
        self.stdout.write(self.style.SUCCESS(f"Created {len(new_categories)} categories and {created} products."))
