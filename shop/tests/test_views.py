import pytest


@pytest.mark.django_db
def test_home_page_renders_with_the_base_layout(client):
    response = client.get("/")

    assert response.status_code == 200
    assert b"Evergreen Shop" in response.content
    assert b"/static/css/site.css" in response.content
