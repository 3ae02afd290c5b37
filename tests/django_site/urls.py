"""The test site's URLs: Django's own resolver is the only route table."""

from __future__ import annotations

from django.urls import path

from django_site import views

urlpatterns = [
    path("customers/<str:customer_id>", views.read_customer, name="customer"),
    path("customers/<str:customer_id>/update", views.update_customer, name="customer-update"),
    path("departments/<str:dept>/export", views.export, name="export"),
    path("text/<str:customer_id>", views.text, name="text"),
    path("notes/<str:customer_id>/<int:page>", views.notes, name="notes"),
    path("misdeclared/<str:id>", views.misdeclared, name="misdeclared"),
    path("cards/<str:customer_id>", views.CardView.as_view(), name="card"),
    path("async-cards/<str:customer_id>", views.AsyncCardView.as_view(), name="async-card"),
    path("nested/<str:customer_id>", views.nested, name="nested"),
    path("empty/<str:customer_id>", views.empty, name="empty"),
    path("async-export/<str:dept>", views.async_export, name="async-export"),
    path("health", views.health, name="health"),
]
