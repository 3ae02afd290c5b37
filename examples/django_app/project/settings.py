"""Settings of the example: the zerotrust middleware and where it finds the PDP."""

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"  # also: refusals carry the policy reasons
ALLOWED_HOSTS = ["localhost", "127.0.0.1"]
ROOT_URLCONF = "project.urls"
INSTALLED_APPS = ["customers"]
MIDDLEWARE = [
    "django.middleware.common.CommonMiddleware",
    "zerotrust.web.django.ZeroTrustMiddleware",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
USE_TZ = True

# Dotted paths to functions returning the PolicyDecisionPoint and the WebConfig.
ZEROTRUST = {
    "PDP": "examples.demo_setup.build_pdp",
    "CONFIG": "examples.demo_setup.build_config",
}
