from django.contrib.auth import get_user_model
from django.db.migrations.loader import MigrationLoader

from accounts.models import User


def test_user_model_is_the_projects_own():
    assert get_user_model() is User


def test_user_model_is_created_by_the_first_migration():
    loader = MigrationLoader(None, ignore_no_migrations=True)
    first = loader.get_migration("accounts", "0001_initial")

    assert first.initial
    assert any(getattr(op, "name", "").lower() == "user" for op in first.operations)
