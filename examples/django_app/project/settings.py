"""Settings of the example: the zerotrust middleware and where it finds the PDP."""

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"  # also: refusals carry the policy reasons
ALLOWED_HOSTS = ["localhost", "127.0.0.1"]
ROOT_URLCONF = "project.urls"
INSTALLED_APPS = ["rest_framework", "customers"]
MIDDLEWARE = [
    "django.middleware.common.CommonMiddleware",
    "zerotrust.web.django.ZeroTrustMiddleware",
]
# A file every server process shares; `manage.py migrate` creates it with the demo records.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_DB", os.path.join(os.path.dirname(__file__), "db.sqlite3")),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],  # the bearer token is zerotrust's to verify
    "DEFAULT_PERMISSION_CLASSES": ["zerotrust.web.drf.ZeroTrustPermission"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": None,
}
USE_TZ = True

# Dotted paths to functions returning the PolicyDecisionPoint and the WebConfig.
ZEROTRUST = {
    "PDP": "examples.demo_setup.build_pdp",
    "CONFIG": "project.security.config",
}
