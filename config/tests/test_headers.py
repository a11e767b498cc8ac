"""Security headers on every page, and no-store on every page that shows personal data."""

from __future__ import annotations

import uuid
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from harness.servers.shop import BASE_DIR
from harness.testing import sign_in
from shop.models import Order

pytestmark = pytest.mark.django_db

CSP = {
    "default-src": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
    "base-uri": "'none'",
    "object-src": "'none'",
}
# Pages with the shopper's basket, orders, account or sessions on them, for ada signed in.
PERSONAL_PAGES = [
    "/cart/",
    "/cart/summary.json",
    "/checkout/",
    "/orders/{order}/",
    "/accounts/",
    "/accounts/me.json",
    "/accounts/sessions/",
    "/accounts/password_change/",
    "/admin/accounts/user/",
    "/admin/password_change/",
]
# Forms that come back with what was typed in (username, email), for anyone.
FORM_PAGES = ["/accounts/login/", "/accounts/signup/", "/admin/login/"]
CATALOGUE_PAGES = ["/", "/products/kite/", "/search/?q=kite"]


@pytest.fixture
def shopper(client, ada, make_product):
    """Return ada's client, signed in (staff too), with one order placed and a basket to check out."""
    ada.is_staff = ada.is_superuser = True
    ada.save()
    kite = make_product(name="Kite", slug="kite")
    sign_in(client)
    client.post(f"/cart/add/{kite.pk}/")
    form = {"name": "Ada", "email": "ada@example.com", "address": "12 Analytical Row", "token": str(uuid.uuid4())}
    assert client.post("/checkout/", form).status_code == 302
    client.post(f"/cart/add/{kite.pk}/")
    return client


def get(shopper, path: str):
    client = Client() if path in FORM_PAGES else shopper
    response = client.get(path.format(order=Order.objects.get().pk))
    assert response.status_code == 200, path
    return response


def directives(header: str) -> dict[str, str]:
    return dict(part.strip().split(" ", 1) for part in header.split(";") if part.strip())


@pytest.mark.parametrize("path", PERSONAL_PAGES + FORM_PAGES)
def test_pages_with_personal_data_are_never_stored(shopper, path):
    cache_control = {part.strip() for part in get(shopper, path)["Cache-Control"].split(",")}

    assert {"no-store", "private"} <= cache_control


@pytest.mark.parametrize("path", PERSONAL_PAGES + FORM_PAGES + CATALOGUE_PAGES)
def test_every_page_has_the_content_security_policy(shopper, path):
    assert directives(get(shopper, path)["Content-Security-Policy"]) == CSP


@pytest.mark.parametrize("path", PERSONAL_PAGES + FORM_PAGES + CATALOGUE_PAGES)
def test_every_page_turns_off_unused_browser_features(shopper, path):
    policy = get(shopper, path)["Permissions-Policy"]

    assert {"camera=()", "microphone=()", "geolocation=()", "payment=()"} <= {p.strip() for p in policy.split(",")}


@pytest.mark.parametrize("path", PERSONAL_PAGES + FORM_PAGES + CATALOGUE_PAGES)
def test_every_page_sends_referrers_to_the_shop_only(shopper, path):
    assert get(shopper, path)["Referrer-Policy"] == "same-origin"


def test_static_files_carry_the_policy_too(client):
    response = client.get("/static/css/site.css")

    assert directives(response["Content-Security-Policy"]) == CSP


class InlineCode(HTMLParser):
    """Collect what a policy without 'unsafe-inline' refuses: inline scripts, styles and handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script" and "src" not in names and dict(attrs).get("type") != "application/json":
            self.found.append("<script> without src")
        if tag == "style":
            self.found.append("<style>")
        self.found += [f"{name}= on <{tag}>" for name in names if name == "style" or name.startswith("on")]

    @classmethod
    def of(cls, html: str) -> list[str]:
        parser = cls()
        parser.feed(html)
        return parser.found


def template_files() -> list[Path]:
    roots = [Path(d) for t in settings.TEMPLATES for d in t["DIRS"]]
    roots += [BASE_DIR / app / "templates" for app in ("accounts", "shop", "cart", "durable_sessions")]
    return sorted(path for root in roots if root.is_dir() for path in root.rglob("*.html"))


def test_templates_have_no_inline_script_style_or_handlers():
    files = template_files()

    assert files, "no templates found"
    assert {str(path.relative_to(BASE_DIR)): InlineCode.of(path.read_text()) for path in files} == {
        str(path.relative_to(BASE_DIR)): [] for path in files
    }


@pytest.mark.parametrize("path", PERSONAL_PAGES + FORM_PAGES + CATALOGUE_PAGES)
def test_rendered_pages_have_no_inline_code_the_policy_would_refuse(shopper, path):
    response = get(shopper, path)
    if response["Content-Type"].startswith("text/html"):
        assert InlineCode.of(response.content.decode()) == []
    else:
        assert response["Content-Type"] == "application/json"


def test_admin_changelist_loads_its_behaviour_from_files_under_the_policy(shopper):
    page = shopper.get("/admin/accounts/user/")
    html = page.content.decode()

    assert page.status_code == 200 and "Select user to change" in html
    assert directives(page["Content-Security-Policy"]) == CSP
    assert "/static/admin/js/actions.js" in html and InlineCode.of(html) == []
