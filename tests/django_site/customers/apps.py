"""The app's label is ``customers``: its permissions are ``customers.view_customer``..."""

from __future__ import annotations

from django.apps import AppConfig


class CustomersConfig(AppConfig):
    name = "django_site.customers"
    label = "customers"
    default_auto_field = "django.db.models.BigAutoField"
