"""Search on PostgreSQL: words in any order, stems, typos, ranking; and what is not worth searching for."""

from __future__ import annotations

import pytest

from shop.selectors import product_search, search_resolve, searchable

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalogue(make_product):
    return {
        "chocolate": make_product(name="Dark Chocolate", description="Bitter and smooth, from the pantry."),
        "pot": make_product(name="Copper Pot", description="For melting chocolate slowly."),
        "mug": make_product(name="Harbour Mug", description="A stoneware mug for tea."),
        "kite": make_product(name="Forest Kite", description="Flies in any wind."),
        "hidden": make_product(name="Hidden Chocolate", is_active=False),
    }


def names(query: str) -> list[str]:
    searched, count = search_resolve(query=query)
    names = [product.name for product in product_search(query=searched)]
    assert count == len(names)
    return names


def test_a_word_finds_it_in_the_name_first_then_in_the_description(catalogue):
    assert names("chocolate") == ["Dark Chocolate", "Copper Pot"]


def test_a_misspelt_word_finds_what_was_meant(catalogue):
    assert "Dark Chocolate" in names("choclate")
    assert names("harbor") == ["Harbour Mug"]


def test_two_words_in_another_order_and_other_forms_of_a_word(catalogue):
    assert names("chocolate dark")[0] == "Dark Chocolate"  # best first; the pot mentions chocolate too
    assert names("mugs") == ["Harbour Mug"]  # stemmed
    assert names("flying kites") == ["Forest Kite"]


def test_nothing_inactive_and_nothing_unrelated(catalogue):
    assert "Hidden Chocolate" not in names("chocolate")
    assert names("submarine") == []


@pytest.mark.parametrize("query", ["", "   ", "!!!", "&|!():*", "a b c", "'"])
def test_a_query_without_a_word_runs_no_search(catalogue, client, query, django_assert_num_queries):
    assert not searchable(query)
    with django_assert_num_queries(0):
        assert search_resolve(query=query)[1] == 0

    page = client.get("/search/", {"q": query}).content.decode()

    assert "Results for" not in page
    if query.strip():
        assert "type a word of two letters or more" in page


def test_an_absurd_query_is_answered(catalogue, client):
    assert client.get("/search/", {"q": "chocolate " * 2000}).status_code == 200
    assert client.get("/search/", {"q": "choc\x00olate <script>"}).status_code == 200


def test_a_renamed_product_is_found_by_its_new_name_even_misspelt(catalogue):
    kite = catalogue["kite"]
    kite.name = "Forest Glider"
    kite.save()

    assert names("glidre") == ["Forest Glider"]
    assert names("sliders") == []
