"""Load the demo catalogue: categories and products with varied prices and stock."""

from __future__ import annotations

import random
from decimal import Decimal

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils.text import slugify

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
    help = "Load the demo catalogue. Idempotent: products already there are left as they are."

    def add_arguments(self, parser):
        parser.add_argument("--if-empty", action="store_true", help="Do nothing if any product exists.")
        parser.add_argument("--dry-run", action="store_true", help="Say what would be created; write nothing.")

    @transaction.atomic
    def handle(self, *args, if_empty: bool = False, dry_run: bool = False, **options):
        if if_empty and Product.objects.exists():
            self.stdout.write("The catalogue is not empty; nothing to do.")
            return
        rows = demo_catalogue()
        categories = {c.slug: c for c in Category.objects.all()}
        new_categories = [
            Category(name=name, slug=slugify(name)) for name in CATEGORIES if slugify(name) not in categories
        ]
        existing = set(Product.objects.values_list("slug", flat=True))
        new_products = [row for row in rows if slugify(row[1]) not in existing]
        if dry_run:
            self.stdout.write(f"Would create {len(new_categories)} categories and {len(new_products)} products.")
            return
        for category in Category.objects.bulk_create(new_categories):
            categories[category.slug] = category
        Product.objects.bulk_create(
            Product(
                category=categories[slugify(category)],
                name=name,
                slug=slugify(name),
                description=description,
                price=price,
                stock=stock,
            )
            for category, name, description, price, stock in new_products
        )
        self.stdout.write(
            self.style.SUCCESS(f"Created {len(new_categories)} categories and {len(new_products)} products.")
        )
