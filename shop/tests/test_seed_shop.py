"""seed_shop --products: a catalogue of any size, loaded in batches, once."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from shop.models import Category, Product

pytestmark = pytest.mark.django_db


def test_a_catalogue_of_any_size_is_loaded_once(capsys):
    call_command("seed_shop", "--products", "6000")  # past the demo's 225, and past one batch
    call_command("seed_shop", "--products", "6000")

    assert Product.objects.count() == 6000
    assert Product.objects.values("slug").distinct().count() == 6000
    assert Category.objects.count() == 9
    assert "Created 9 categories and 6000 products." in capsys.readouterr().out
    assert Product.objects.filter(name__contains="Chocolate").exists()  # something sweet to look for


def test_more_products_adds_only_the_new_ones(capsys):
    call_command("seed_shop")
    call_command("seed_shop", "--products", "300")

    assert Product.objects.count() == 300
    assert "Created 0 categories and 75 products." in capsys.readouterr().out
