"""Settings for running the shop on a workstation (``make run``)."""

from __future__ import annotations

from config import env

from .base import *  # noqa: F403

DEBUG = True if env.DEBUG is None else env.DEBUG
# Only for the workstation: production refuses to start without its own key.
SECRET_KEY = env.SECRET_KEY or "insecure-local-only-key-never-used-in-production"
# Plain storage: no collectstatic needed while developing.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
