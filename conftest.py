"""Share fixtures for real servers across every app's tests."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from harness.servers.backing import RedisServer, private_redis
from harness.servers.container import remove_leftover_containers
from harness.servers.image import build_image
from harness.servers.shop import ShopServer, collectstatic, production_env
from harness.testing import PASSWORD

_RUN_STARTED = time.time()


def pytest_collection_modifyitems(items) -> None:
    """Run every database test in real transactions.

    The shop writes a session to Redis only once its transaction has committed
    (durable_sessions); inside the one transaction pytest-django would wrap a
    test in, nothing commits and Redis would never be written.
    """
    for item in items:
        if "db" in getattr(item, "fixturenames", ()) or item.get_closest_marker("django_db"):
            item.add_marker(pytest.mark.django_db(transaction=True), append=False)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """Run a private Redis server this test may stop, pause or flush."""
    with private_redis() as server:
        yield server


@pytest.fixture(scope="session")
def shop_image() -> str:
    """Build the shop's container image once per run (podman reuses its layers when nothing changed)."""
    image = build_image()
    remove_leftover_containers()
    return image


@pytest.fixture(scope="session")
def collected_static() -> None:
    """Collect static files once, as the container image build does."""
    collectstatic(production_env(DATABASE_URL="postgres://unused@127.0.0.1:1/unused"))


def database_url(settings_dict: dict) -> str:
    """Return a postgres:// URL for a Django database settings dict."""
    user = settings_dict.get("USER") or "postgres"
    password = f":{settings_dict['PASSWORD']}" if settings_dict.get("PASSWORD") else ""
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{settings_dict['NAME']}"


@pytest.fixture(scope="session")
def test_database_url(django_db_setup, django_db_blocker) -> str:
    """Return the URL of the test database, for servers running outside pytest."""
    from django.db import connection

    return database_url(connection.settings_dict)


@pytest.fixture
def quick_probes(settings):
    """Let the session cache's breaker probe Redis every 0.2 s, for tests that wait for it to close."""
    settings.DURABLE_SESSIONS_BREAKER_RESET_TIMEOUT = 0.2


@pytest.fixture
def fresh_breakers():
    """Start from no session cache breakers in this process: the gauge counts every breaker, and earlier
    tests' private servers are gone, some with their breakers left open."""
    from durable_sessions.cache import backend, breaker, shards

    for each in list(breaker._live):
        each.retire()
    backend._breakers.clear()
    backend._watchers.clear()
    shards._guards.clear()


@pytest.fixture
def forget_login_failures():
    """Start with no failed sign-ins counted (the counters live in Redis, shared by every test)."""
    from django.core.cache import cache

    cache.delete_pattern("*login-failures:*")
    yield
    cache.delete_pattern("*login-failures:*")


@pytest.fixture
def ada(django_user_model, forget_login_failures):
    """Return a shopper with an account, who signs in with harness.testing.PASSWORD."""
    return django_user_model.objects.create_user("ada", email="ada@example.com", password=PASSWORD)


@pytest.fixture(autouse=True)
def new_catalogue_generation(request) -> None:
    """Start every database test with a new catalogue generation: list pages cached by an earlier test are not its."""
    if request.node.get_closest_marker("django_db"):
        from shop.list_cache import catalogue_changed

        catalogue_changed()


@pytest.fixture
def category(db):
    from shop.list_cache import catalogue_changed
    from shop.models import Category

    created = Category.objects.create(name="Garden", slug="garden")
    catalogue_changed()  # as the admin does
    return created


@pytest.fixture
def make_product(db, category):
    """Return a factory of products in one category, with sensible defaults."""
    from decimal import Decimal

    from shop.list_cache import catalogue_changed
    from shop.models import Product

    counter = iter(range(1, 10_000))

    def make(**fields):
        n = next(counter)
        fields.setdefault("name", f"Product {n}")
        fields.setdefault("slug", f"product-{n}")
        fields.setdefault("price", Decimal("9.99"))
        fields.setdefault("stock", 10)
        fields.setdefault("category", category)
        created = Product.objects.create(**fields)
        catalogue_changed()  # as the admin does
        return created

    return make


@pytest.fixture
def change_product(db):
    """Change products behind the basket's back, as the admin does: rows, then cache."""
    from shop.list_cache import catalogue_changed
    from shop.models import Product
    from shop.product_cache import products_forget

    def change(product_id: int, **fields) -> None:
        Product.objects.filter(pk=product_id).update(**fields)
        products_forget([product_id])
        catalogue_changed()

    return change


@pytest.fixture
def live_shop(test_database_url, collected_static, transactional_db, tmp_path) -> Iterator[ShopServer]:
    """Run the shop under gunicorn (3 workers, production settings) on the test database and Redis."""
    from django.conf import settings

    server = ShopServer(
        production_env(DATABASE_URL=test_database_url, REDIS_URL=settings.TEST_REDIS_URL),
        workers=3,
        log_path=tmp_path / "gunicorn.log",
    ).start()
    yield server
    server.stop()


def pytest_terminal_summary(terminalreporter) -> None:
    """Print the resilience tables and the container's figures when this run wrote them."""
    from harness.servers.image import BASE_DIR

    for name in ("resilience", "postgres-outage", "container"):
        report = BASE_DIR / "artifacts" / f"{name}.md"
        if report.exists() and report.stat().st_mtime >= _RUN_STARTED:
            terminalreporter.write_sep("=", name)
            terminalreporter.write_line(report.read_text())
