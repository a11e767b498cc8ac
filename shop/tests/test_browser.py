"""A shopper in a real browser: browse, fill the basket, change it, check out; the admin too."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from harness.servers.backing import CHROMIUM
from harness.servers.shop import BASE_DIR
from harness.testing import PASSWORD
from shop.models import Order

SCREENSHOTS = BASE_DIR / "artifacts" / "browser"
# Without these Chromium tries to reach the network at start, which is closed here.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def page(monkeypatch) -> Iterator:
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls the
    # test makes between browser steps are plain synchronous ones.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        yield context.new_page()
        browser.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_shopper_browses_adds_two_products_changes_quantity_and_checks_out(live_shop, page, make_product):
    make_product(name="Forest Kite", slug="forest-kite", price=Decimal("12.50"), stock=5)
    make_product(name="Harbour Mug", slug="harbour-mug", price=Decimal("3.35"), stock=10)

    page.goto(live_shop.url + "/")
    assert page.locator("#basket-count").inner_text() == "0"
    shot(page, "01-home")

    page.get_by_role("link", name="Forest Kite").first.click()
    page.get_by_label("Quantity").fill("2")
    page.get_by_role("button", name="Add to basket").click()
    assert "Added 2 × Forest Kite" in page.locator(".messages").inner_text()
    assert page.locator("#basket-count").inner_text() == "2"
    shot(page, "02-added-kite")

    page.get_by_label("Search products").fill("harbor mug")  # a typo
    page.get_by_role("button", name="Search").click()
    assert page.get_by_role("link", name="Harbour Mug").first.is_visible()
    shot(page, "02b-search-with-a-typo")
    page.get_by_label("Search products").fill("mug")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="Harbour Mug").first.click()
    page.get_by_role("button", name="Add to basket").click()
    assert page.locator("#basket-count").inner_text() == "3"
    shot(page, "03-added-mug")

    page.get_by_role("link", name="Basket").click()
    page.get_by_label("Quantity of Forest Kite").fill("3")
    page.locator("form", has=page.get_by_label("Quantity of Forest Kite")).get_by_role("button", name="Update").click()
    assert "quantity set to 3" in page.locator(".messages").inner_text()
    assert page.locator("#basket-total").inner_text() == "£40.85"
    shot(page, "04-basket")

    page.get_by_role("link", name="Checkout").click()
    page.get_by_label("Full name").fill("Ada Lovelace")
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Delivery address").fill("12 Analytical Row\nLondon")
    shot(page, "05-checkout")
    page.get_by_role("button", name="Place order").click()

    assert page.get_by_role("heading", name="Order #").is_visible()
    assert "Thank you! Your order" in page.locator(".messages").inner_text()
    assert page.locator("#basket-count").inner_text() == "0"
    shot(page, "06-confirmation")
    order = Order.objects.get()
    assert page.url.endswith(order.get_absolute_url())
    assert order.total == Decimal("40.85")
    assert sorted((line.product_name, line.quantity) for line in order.lines.all()) == [
        ("Forest Kite", 3),
        ("Harbour Mug", 1),
    ]


# Reports each Content-Security-Policy violation to the test; added before any page script runs.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) =>
    window.reportViolation(`${e.effectiveDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
"""


def test_shop_and_admin_work_under_the_content_security_policy(live_shop, page, make_product, django_user_model):
    make_product(name="Forest Kite", slug="forest-kite", price=Decimal("12.50"), stock=5)
    violations: list[str] = []
    page.expose_function("reportViolation", lambda report: violations.append(report))
    page.add_init_script(REPORT_VIOLATIONS)

    # Signed up through the shop, whose production settings hash the password as production does.
    page.goto(live_shop.url + "/accounts/signup/")
    page.get_by_label("Username").fill("root")
    page.get_by_label("Email").fill("root@example.com")
    page.locator("#id_password1").fill(PASSWORD)
    page.locator("#id_password2").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    assert "Signed in as root" in page.locator(".site-header").inner_text()
    django_user_model.objects.filter(username="root").update(is_staff=True, is_superuser=True)
    page.goto(live_shop.url + "/products/forest-kite/")
    page.get_by_role("button", name="Add to basket").click()
    assert page.locator("#basket-count").inner_text() == "1"
    page.goto(live_shop.url + "/cart/")
    page.goto(live_shop.url + "/accounts/sessions/")

    # The admin's behaviour is its own script files: ticking a row updates the action counter.
    page.goto(live_shop.url + "/admin/accounts/user/")
    page.locator("input.action-select").first.check()
    assert page.locator(".action-counter").inner_text() == "1 of 1 selected"
    shot(page, "07-admin-under-csp")
    page.get_by_role("link", name="root").click()
    page.locator("form#user_form").wait_for()  # the change form, with its scripts
    page.goto(live_shop.url + "/admin/password_change/")
    page.get_by_label("Old password").wait_for()
    # The sessions overview: linked from the admin's index, its charts SVG drawn by the server.
    page.goto(live_shop.url + "/admin/")
    page.get_by_role("link", name="Sessions overview").click()
    assert page.get_by_role("heading", name="Sessions overview").is_visible()
    assert page.locator("#signed-in-users").inner_text() == "1"
    assert page.locator("svg[role=img]").count() == 5
    assert "Chrome" in page.locator("svg[aria-label='Active sessions by browser']").inner_html()
    shot(page, "08-sessions-overview")

    page.evaluate("1")  # a round trip, so any report still in flight has arrived
    assert violations == []
