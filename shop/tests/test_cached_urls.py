"""{% url %} and reverse(), cached per process, give what Django's reverse() gives."""

from __future__ import annotations

import pytest
from django.template import Context, Template
from django.urls import NoReverseMatch, clear_script_prefix, set_script_prefix
from django.urls import reverse as django_reverse

from shop.cached_urls import CachedURLNode, _reverse, reverse


@pytest.fixture(autouse=True)
def fresh_cache():
    _reverse.cache_clear()
    yield
    clear_script_prefix()


@pytest.mark.parametrize(
    ("name", "args", "kwargs"),
    [
        ("shop:home", None, None),
        ("shop:product", ["green-trowel"], None),
        ("cart:update", [42], None),
        ("cart:update", None, {"product_id": 42}),
        ("admin:auth_group_change", ["7"], None),
    ],
)
def test_same_urls_as_django(name, args, kwargs):
    assert reverse(name, args=args, kwargs=kwargs) == django_reverse(name, args=args, kwargs=kwargs)
    assert reverse(name, args=args, kwargs=kwargs) == django_reverse(name, args=args, kwargs=kwargs)


def test_each_url_is_reversed_once():
    for _ in range(3):
        reverse("cart:update", args=[1])
    reverse("cart:update", args=[2])

    info = _reverse.cache_info()
    assert (info.misses, info.hits) == (2, 2)


def test_the_script_prefix_is_part_of_the_answer():
    before = reverse("shop:home")
    set_script_prefix("/shop/")

    assert reverse("shop:home") == "/shop/" == django_reverse("shop:home")
    assert before == "/"


def test_other_arguments_go_straight_to_django():
    class Slug:
        def __str__(self) -> str:
            return "odd-slug"

    assert reverse("shop:product", args=[Slug()]) == "/products/odd-slug/"
    assert _reverse.cache_info().currsize == 0


def test_url_tag_is_the_cached_one_everywhere_and_keeps_its_forms():
    template = Template(
        "{% url 'cart:update' 3 %}|{% url 'shop:product' slug %}|{% url 'nope' as missing %}[{{ missing }}]"
    )
    assert any(isinstance(node, CachedURLNode) for node in template.nodelist)
    assert template.render(Context({"slug": "green-trowel"})) == "/cart/update/3/|/products/green-trowel/|[]"
    with pytest.raises(NoReverseMatch):
        Template("{% url 'nope' %}").render(Context())


def test_query_and_fragment_are_django_s():
    assert reverse("shop:search", query={"q": "trowel"}, fragment="top") == "/search/?q=trowel#top"
