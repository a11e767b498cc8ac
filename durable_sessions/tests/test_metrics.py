"""The session tier's metrics move as sessions are read, changed, locked and ended, on real servers."""

from __future__ import annotations

import threading

import psycopg
import pytest
from django.contrib.auth import SESSION_KEY
from django.test import Client, override_settings
from prometheus_client import REGISTRY

from config.caches import build_caches
from durable_sessions.metrics import IDLE, LOGOUT, PASSWORD, REVOKED
from durable_sessions.models import SessionEnd
from durable_sessions.services import sessions_end
from harness.testing import PASSWORD as ADA_PASSWORD
from harness.testing import basket_lines, session_backdate, session_row, sign_in, wait_until

pytestmark = pytest.mark.usefixtures("quick_probes")
NEW_PASSWORD = "another-Passphrase-7"
CHANGE_PASSWORD = {"old_password": ADA_PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Delta:
    """How much one metric sample moved since this was made."""

    def __init__(self, name: str, **labels: str) -> None:
        self.name, self.labels, self.start = name, labels, value(name, **labels)

    def __call__(self) -> float:
        return value(self.name, **self.labels) - self.start


@pytest.mark.django_db
def test_session_reads_count_hits_misses_and_database_loads(client, make_product, redis_server):
    product = make_product()
    with override_settings(CACHES=build_caches(redis_server.url)):
        client.post(f"/cart/add/{product.pk}/")
        hits = Delta("shop_session_cache_requests_total", result="hit")
        misses = Delta("shop_session_cache_requests_total", result="miss")
        db_reads = Delta("shop_session_db_reads_total")

        basket_lines(client)
        assert (hits(), misses(), db_reads()) == (1, 0, 0)

        redis_server.cli("FLUSHALL")
        basket_lines(client)  # from PostgreSQL, then cached again
        basket_lines(client)

    assert (hits(), misses(), db_reads()) == (2, 1, 1)


@pytest.mark.django_db
def test_stopping_redis_moves_the_breaker_gauge_and_transitions(client, make_product, redis_server, fresh_breakers):
    product = make_product()
    opened = Delta("shop_session_breaker_transitions_total", to="open")
    closed = Delta("shop_session_breaker_transitions_total", to="closed")
    errors = Delta("shop_session_cache_requests_total", result="error")
    skipped = Delta("shop_session_cache_requests_total", result="skipped")
    with override_settings(CACHES=build_caches(redis_server.url)):
        client.post(f"/cart/add/{product.pk}/")
        assert value("shop_session_breaker_open") == 0
        redis_server.stop()
        for _ in range(6):
            assert basket_lines(client) == {str(product.pk): 1}  # from PostgreSQL

        assert value("shop_session_breaker_open") == 1
        assert opened() == 1 and closed() == 0
        assert errors() >= 1 and skipped() >= 1  # reads failed until it opened; then Redis was not asked

        redis_server.start()
        wait_until(lambda: basket_lines(client) and value("shop_session_breaker_open") == 0)

    assert closed() == 1


@pytest.mark.django_db(transaction=True)
def test_a_change_that_waited_for_the_row_lock_shows_in_the_lock_histogram(client, make_product, test_database_url):
    product = make_product()
    client.post(f"/cart/add/{product.pk}/")
    changes = Delta("shop_session_lock_wait_seconds_count")
    slow = Delta("shop_session_lock_wait_seconds_bucket", le="+Inf")
    quick = Delta("shop_session_lock_wait_seconds_bucket", le="0.1")
    waited = Delta("shop_session_lock_wait_seconds_sum")
    row = session_row(client.cookies["sessionid"].value)

    with psycopg.connect(test_database_url) as holder:
        holder.execute("SELECT 1 FROM accounts_usersession WHERE session_key = %s FOR UPDATE", [row.session_key])
        release = threading.Timer(0.4, holder.commit)  # the lock is held this long: the wait to observe
        release.start()
        client.post(f"/cart/add/{product.pk}/")
        release.join()

    assert basket_lines(client) == {str(product.pk): 2}
    assert changes() == 1 and slow() == 1 and quick() == 0
    assert waited() >= 0.3


@pytest.mark.django_db
def test_sessions_started_count_new_sessions_not_a_sign_ins_new_key(make_product, ada):
    product = make_product()
    started = Delta("shop_sessions_started_total")
    shopper = Client()

    shopper.post(f"/cart/add/{product.pk}/")  # a new, anonymous session
    sign_in(shopper)  # the same session under a new key

    assert started() == 1


@pytest.mark.django_db
def test_ended_sessions_are_counted_and_recorded_by_reason(ada, django_user_model):
    logouts, revoked, password, idle = (
        Delta("shop_sessions_ended_total", reason=reason) for reason in (LOGOUT, REVOKED, PASSWORD, IDLE)
    )
    first, second, third, fourth = Client(), Client(), Client(), Client()
    for shopper in (first, second, third, fourth):
        sign_in(shopper)

    first.post("/accounts/logout/")
    sessions_end([session_row(second.cookies["sessionid"].value).session_key], reason=REVOKED)
    session_backdate(third.cookies["sessionid"].value, last_activity=1)  # idle for decades
    assert third.get("/accounts/me.json").json()["authenticated"] is False
    fourth.post(
        "/accounts/password_change/",
        {
            "old_password": ADA_PASSWORD,
            "new_password1": "another-Passphrase-7",
            "new_password2": "another-Passphrase-7",
        },
    )  # ends every other session of ada's: none is left but fourth's own

    assert (logouts(), revoked(), password(), idle()) == (1, 1, 0, 1)
    reasons = sorted(SessionEnd.objects.values_list("reason", flat=True))
    assert reasons == sorted([LOGOUT, REVOKED, IDLE])
    assert all(end.authenticated_at is not None for end in SessionEnd.objects.all())


@pytest.mark.django_db
def test_a_password_change_ends_the_other_sessions_for_that_reason(ada):
    ended = Delta("shop_sessions_ended_total", reason=PASSWORD)
    phone, laptop = Client(), Client()
    sign_in(phone)
    sign_in(laptop)

    laptop.post(
        "/accounts/password_change/",
        {
            "old_password": ADA_PASSWORD,
            "new_password1": "another-Passphrase-7",
            "new_password2": "another-Passphrase-7",
        },
    )

    assert ended() == 1
    assert phone.get("/accounts/me.json").json()["authenticated"] is False
    assert SESSION_KEY in session_row(laptop.cookies["sessionid"].value).get_decoded()


@pytest.mark.django_db
def test_signing_in_without_a_session_starts_one(ada):
    started = Delta("shop_sessions_started_total")

    sign_in(Client())  # the sign-in page's GET leaves no session: the sign-in makes the first

    assert started() == 1


@pytest.mark.django_db
def test_housekeeping_ends_sessions_for_the_reason_they_are_over(ada, make_product):
    from django.utils import timezone

    from durable_sessions.backends.cached_db import SessionStore
    from durable_sessions.metrics import EXPIRED, LIFETIME
    from durable_sessions.models import UserSession

    signed_in, anonymous = Client(), Client()
    sign_in(signed_in)
    anonymous.post(f"/cart/add/{make_product().pk}/")
    session_backdate(signed_in.cookies["sessionid"].value, authenticated_at=1)  # signed in decades ago
    stale = session_row(anonymous.cookies["sessionid"].value).session_key
    UserSession.objects.filter(session_key=stale).update(expire_date=timezone.now())
    lifetime, expired = (
        Delta("shop_sessions_ended_total", reason=LIFETIME),
        Delta("shop_sessions_ended_total", reason=EXPIRED),
    )

    SessionStore.clear_expired()

    assert (lifetime(), expired()) == (1, 1)
    assert sorted(SessionEnd.objects.values_list("reason", flat=True)) == [EXPIRED, LIFETIME]
