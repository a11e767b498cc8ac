"""The sessions overview in the admin: who may see it, and what it counts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from durable_sessions.metrics import IDLE, LOGOUT
from durable_sessions.models import SessionEnd
from harness.testing import PASSWORD, sign_in

OVERVIEW = "/admin/durable_sessions/usersession/overview/"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)


@pytest.fixture
def viewer(django_user_model, forget_login_failures):
    """A member of staff allowed to view sessions, and nothing else."""
    user = django_user_model.objects.create_user("viewer", password=PASSWORD, is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_usersession"))
    client = Client(HTTP_USER_AGENT=FIREFOX)
    sign_in(client, "viewer")
    return client


@pytest.mark.django_db
def test_staff_without_the_view_permission_get_neither_the_page_nor_its_link(django_user_model, forget_login_failures):
    django_user_model.objects.create_user("clerk", password=PASSWORD, is_staff=True)
    clerk = Client()
    sign_in(clerk, "clerk")

    assert clerk.get(OVERVIEW).status_code == 403
    assert "Sessions overview" not in clerk.get("/admin/").content.decode()


@pytest.mark.django_db
def test_the_overview_is_linked_from_the_admin_index(viewer):
    assert f'href="{OVERVIEW}"' in viewer.get("/admin/").content.decode()


@pytest.mark.django_db
def test_the_overview_counts_sessions_sign_ins_ends_and_clients(viewer, ada, make_product):
    phone = Client(HTTP_USER_AGENT=SAFARI)
    sign_in(phone)  # ada, on a phone
    anonymous = Client(HTTP_USER_AGENT=SAFARI)
    anonymous.post(f"/cart/add/{make_product().pk}/")
    now = timezone.now()
    SessionEnd.objects.bulk_create(
        [
            SessionEnd(reason=LOGOUT, created_at=now - timedelta(hours=3), authenticated_at=now - timedelta(hours=3)),
            SessionEnd(reason=IDLE, created_at=now - timedelta(hours=30)),  # began before the last 24 hours
            SessionEnd(reason=IDLE, ended_at=now - timedelta(days=2)),  # ended before them
        ]
    )

    response = viewer.get(OVERVIEW)

    assert response.status_code == 200
    overview = response.context["overview"]
    assert (overview.active_sessions, overview.signed_in_users) == (3, 2)  # viewer's, ada's, the anonymous one
    assert sum(n for _, n in overview.sessions_started) == 4  # three live, one ended
    assert sum(n for _, n in overview.sign_ins) == 3
    assert dict(overview.ended_by_reason) == {
        "logout": 1,
        "revoked": 0,
        "password": 0,
        "expired": 0,
        "idle": 1,
        "lifetime": 0,
    }
    assert dict(overview.browsers) == {"Mobile Safari": 2, "Firefox": 1}
    assert dict(overview.systems) == {"iOS": 2, "Linux": 1}
    assert overview.breaker in ("closed", "open", "none")
    page = response.content.decode()
    assert page.count('role="img"') == 5 and "<script" not in page.split('id="content-main"')[1]
    assert "<title>Firefox: 1</title>" in page
