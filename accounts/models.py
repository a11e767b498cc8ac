"""Define the shop's user model."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser


class User(AbstractUser):
    """A shopper or a member of staff.

    The project's own model from the first migration, so that fields can be
    added later without swapping the user model under existing data.
    """
