"""The Django test site's settings: auth, contenttypes, DRF, Channels and a real model on
SQLite. Only the Django tests configure Django with them (web_helpers.django_urls)."""

from __future__ import annotations

import os
import tempfile

SECRET_KEY = "test-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["localhost", "testserver", "127.0.0.1"]
ROOT_URLCONF = "django_site.urls"
MIDDLEWARE: list[str] = []
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "rest_framework",
    "django_site.customers",
]
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
# A file, not ":memory:": the async client and Channels reach the ORM from other threads.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.path.join(tempfile.gettempdir(), f"zerotrust-django-{os.getpid()}.sqlite3"),
        "TEST": {
            "NAME": os.path.join(
                tempfile.gettempdir(), f"zerotrust-django-test-{os.getpid()}.sqlite3"
            )
        },
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": None,
}
